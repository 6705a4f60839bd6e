//! Tokenization with the `tokenizers` crate from a `tokenizer.json`.
//!
//! Padding and truncation baked into the file are turned off: taskgate pads each batch to its
//! longest sequence and truncates (longest first) to its own `max_length`. For token labels,
//! each whitespace-separated word of `text` is labelled on its first sub-token; raw text given
//! to `predict` is cut into words as the task's [`WordSplit`] says.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// How raw text is cut into the words a token task tags (the words of training and
/// evaluation files are always theirs: CoNLL and word/TAG tokens, or JSONL text split at
/// whitespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WordSplit {
    /// At whitespace: `shot.` is one word.
    #[default]
    Whitespace,
    /// BERT's basic split: at whitespace, and every punctuation character is a word of its
    /// own (`shot.` is `shot` and `.`), as in the Penn Treebank and CoNLL data.
    Punctuation,
}

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
    /// For each token: its byte span in `text`, `None` for special tokens, the text pair and
    /// empty spans (so that words can be found again with another [`WordSplit`]).
    pub offsets: Vec<Option<(usize, usize)>>,
}

impl Encoded {
    /// The words of `text` (this example's text) under `split`, and for each token the word it
    /// starts (as `word_starts` does for whitespace words).
    pub fn words(&self, text: &str, split: WordSplit) -> (Vec<String>, Vec<Option<usize>>) {
        let spans = word_spans_with(text, split);
        let starts = word_starts(&self.offsets, &spans);
        let words = spans.iter().map(|&(a, b)| text[a..b].to_string()).collect();
        (words, starts)
    }
}

/// For each token span, the word of `spans` it is the first token of.
fn word_starts(offsets: &[Option<(usize, usize)>], spans: &[(usize, usize)]) -> Vec<Option<usize>> {
    let mut seen = vec![false; spans.len()];
    offsets
        .iter()
        .map(|offset| {
            let (start, _) = (*offset)?;
            let w = spans.iter().position(|&(s, e)| start >= s && start < e)?;
            (!seen[w]).then(|| {
                seen[w] = true;
                w
            })
        })
        .collect()
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

    /// The tokens the tokenizer puts around a text (BERT: `[CLS]` and `[SEP]`), which
    /// generation uses as its start and end tokens.
    pub fn start_end_ids(&self) -> Result<(u32, u32)> {
        let empty = self
            .inner
            .encode("", true)
            .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        match empty.get_ids() {
            [start, .., end] => Ok((*start, *end)),
            _ => bail!(
                "the tokenizer adds no start and end tokens around a text; generation tasks \
                 need them (BERT's [CLS] and [SEP])"
            ),
        }
    }

    /// A target text's tokens with the start and end tokens (`[CLS] t1 .. tn [SEP]`).
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of generated tokens, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("cannot decode tokens: {e}"))
    }

    /// Tokenizes `text` (and `pair`), with the tokenizer's special tokens.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let encoding = match pair {
            Some(p) => self.inner.encode((text, p), true),
            None => self.inner.encode(text, true),
        }
        .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        let specials = encoding.get_special_tokens_mask();
        let sequence_ids = encoding.get_sequence_ids();
        let offsets: Vec<Option<(usize, usize)>> = encoding
            .get_offsets()
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| {
                let in_text = sequence_ids[i] == Some(0) && specials[i] == 0 && end > start;
                in_text.then_some((start, end))
            })
            .collect();
        let spans = word_spans(text);
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            word_starts: word_starts(&offsets, &spans),
            n_words: spans.len(),
            offsets,
        })
    }
}

/// Byte spans of the words of `text` under `split`.
pub fn word_spans_with(text: &str, split: WordSplit) -> Vec<(usize, usize)> {
    match split {
        WordSplit::Whitespace => word_spans(text),
        WordSplit::Punctuation => {
            use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
            let mut pieces = PreTokenizedString::from(text);
            let split =
                tokenizers::pre_tokenizers::bert::BertPreTokenizer.pre_tokenize(&mut pieces);
            match split {
                Ok(()) => pieces
                    .get_splits(OffsetReferential::Original, OffsetType::Byte)
                    .into_iter()
                    .map(|(_, span, _)| span)
                    .collect(),
                Err(_) => word_spans(text),
            }
        }
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
    use super::*;

    #[test]
    fn whitespace_words() {
        assert_eq!(word_spans("  a bb\tccc "), vec![(2, 3), (4, 6), (7, 10)]);
        assert_eq!(word_spans(""), vec![]);
        assert_eq!(word_spans("héllo wörld"), vec![(0, 6), (7, 13)]);
    }

    #[test]
    fn punctuation_words() {
        let text = "He shot. «Bank», it's U.S.";
        let words: Vec<&str> = word_spans_with(text, WordSplit::Punctuation)
            .iter()
            .map(|&(a, b)| &text[a..b])
            .collect();
        assert_eq!(
            words,
            [
                "He", "shot", ".", "«", "Bank", "»", ",", "it", "'", "s", "U", ".", "S", "."
            ]
        );
        // The first token of each word starts it; a word split off a token is no one's start.
        let offsets = [None, Some((0, 2)), Some((3, 7)), Some((7, 8)), None];
        let spans = word_spans_with("He shot.", WordSplit::Punctuation);
        assert_eq!(
            word_starts(&offsets, &spans),
            [None, Some(0), Some(1), Some(2), None]
        );
        let spans = word_spans("He shot.");
        assert_eq!(
            word_starts(&offsets, &spans),
            [None, Some(0), Some(1), None, None]
        );
    }
}
