//! Tokenization with the `tokenizers` crate from a `tokenizer.json`.
//!
//! Padding and truncation baked into the file are turned off: taskgate pads each batch to its
//! longest sequence and truncates (longest first) to its own `max_length`. For token labels,
//! each whitespace-separated word of `text` is labelled on its first sub-token.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// One tokenized example.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// For each token: `Some(w)` when it is the first sub-token of whitespace word `w` of
    /// `text`, else `None` (later sub-tokens, special tokens, the text pair).
    pub word_starts: Vec<Option<usize>>,
    /// Whitespace-separated words in `text`.
    pub n_words: usize,
}

/// A loaded tokenizer with our padding and truncation rules.
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    max_length: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, truncating inputs to `max_length` tokens.
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow!("cannot read the tokenizer {}: {e}", path.display()))?;
        Self::from_bytes(&bytes, max_length)
            .map_err(|e| anyhow!("tokenizer {}: {e}", path.display()))
    }

    /// Loads a tokenizer from the bytes of a `tokenizer.json`.
    pub fn from_bytes(bytes: &[u8], max_length: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_bytes(bytes)
            .map_err(|e| anyhow!("not a valid tokenizer.json ({e})"))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        inner.with_padding(None);
        if max_length == 0 {
            bail!("max_length must be at least 1");
        }
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| anyhow!("cannot set truncation: {e}"))?;
        Ok(Self {
            inner,
            pad_id,
            max_length,
        })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The text of token `id` (`[UNK]`-style names for special tokens).
    pub fn token(&self, id: u32) -> String {
        self.inner
            .id_to_token(id)
            .unwrap_or_else(|| format!("<{id}>"))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes `text` (and `pair`), with the tokenizer's special tokens.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let encoding = match pair {
            Some(p) => self.inner.encode((text, p), true),
            None => self.inner.encode(text, true),
        }
        .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        let spans = word_spans(text);
        let mut word_starts = Vec::with_capacity(encoding.len());
        let mut seen = vec![false; spans.len()];
        let specials = encoding.get_special_tokens_mask();
        let sequence_ids = encoding.get_sequence_ids();
        for (i, &(start, end)) in encoding.get_offsets().iter().enumerate() {
            let in_text = sequence_ids[i] == Some(0) && specials[i] == 0 && end > start;
            let word = if in_text {
                spans.iter().position(|&(s, e)| start >= s && start < e)
            } else {
                None
            };
            word_starts.push(match word {
                Some(w) if !seen[w] => {
                    seen[w] = true;
                    Some(w)
                }
                _ => None,
            });
        }
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            word_starts,
            n_words: spans.len(),
        })
    }
}

/// Byte spans of the whitespace-separated words of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::word_spans;

    #[test]
    fn whitespace_words() {
        assert_eq!(word_spans("  a bb\tccc "), vec![(2, 3), (4, 6), (7, 10)]);
        assert_eq!(word_spans(""), vec![]);
        assert_eq!(word_spans("héllo wörld"), vec![(0, 6), (7, 13)]);
    }
}
