//! Generation targets: a target text tokenized with the shared tokenizer into the sequence
//! the decoder reads, `[BOS] t1 .. tn [EOS]`, cut to the decoder's `max_length` (inputs
//! `[BOS] t1 ..` at most `max_length` long; the end token kept) with the cuts counted.

use anyhow::Result;

use crate::config::generation::DEFAULT_DECODER_MAX_LENGTH;
use crate::tasks::{Label, TaskSpec};
use crate::tokenize::TextTokenizer;

/// The longest decoder input of `task` (the start token and the target's tokens).
pub fn decoder_max_length(task: &TaskSpec) -> usize {
    task.decoder
        .as_ref()
        .and_then(|d| d.max_length)
        .unwrap_or(DEFAULT_DECODER_MAX_LENGTH)
}

/// Fills the tokens of a [`Label::Text`] (other labels are left alone); true when the target
/// was longer than the decoder's `max_length` and was cut.
pub fn encode_target(
    task: &TaskSpec,
    label: &mut Label,
    tokenizer: &TextTokenizer,
) -> Result<bool> {
    let Label::Text { text, tokens } = label else {
        return Ok(false);
    };
    let mut ids = tokenizer.encode_target(text)?;
    let max = decoder_max_length(task);
    let cut = ids.len() > max + 1;
    if cut {
        let end = *ids.last().expect("at least the start and end tokens");
        ids.truncate(max);
        ids.push(end);
    }
    *tokens = ids;
    Ok(cut)
}

/// The warning for `cut` targets of `task` in `path`, if any were cut.
pub fn cut_warning(task: &TaskSpec, path: &std::path::Path, cut: usize) -> Option<String> {
    (cut > 0).then(|| {
        format!(
            "warning: {}: task '{}': {cut} target(s) longer than the decoder's max_length ({} \
             tokens with the end token) were cut; raise decoder.max_length to keep them whole",
            path.display(),
            task.name,
            decoder_max_length(task)
        )
    })
}
