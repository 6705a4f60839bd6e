//! Greedy and beam-search decoding of a [`Decoder`] over a memory, batched, with its
//! key/value cache (`nn::decoder::DecoderCache`): each step feeds one token per row, so
//! generating n tokens costs n decoder steps. The steps run on the GPU; each step's logits
//! `[rows, V]` are read back (asynchronously: this is the await point in the browser) and the
//! choice of the next tokens is made on the host, in f64.
//!
//! The rules, token for token those of `tests/reference/decoder.py`:
//! - greedy: every row starts from BOS; each step appends the argmax (ties: lowest id); a row
//!   that appended EOS is finished; at most `max_new_tokens` steps.
//! - beam (per input; `k` beams, length penalty `alpha`): candidates `score + log p(t)` of
//!   every live beam and token, sorted by score (ties: lower beam, then lower token); walking
//!   them, an EOS among the first `k` finishes a hypothesis scored `score / s^alpha` (s
//!   generated tokens, EOS included) and any other token extends a new live beam, until `k`
//!   are live. An input is done once `k` hypotheses finished, or after `max_new_tokens`
//!   steps, when its live beams count as hypotheses too. The `k` best hypotheses are kept
//!   (ties: fewer tokens, then smaller ids).
//!
//! Generated token lists exclude BOS and include EOS when it was produced.

use std::cmp::Ordering;

use anyhow::{Result, bail};

use crate::gpu::Tensor;
use crate::nn::Mode;
use crate::nn::decoder::{Decoder, DecoderCache, DecoderInputs, Memory};
use crate::nn::params::ArenaSet;
use crate::ops::embedding::embedding_forward;

/// The special tokens decoding uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Special {
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
}

/// One beam-search result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    pub tokens: Vec<u32>,
    /// Sum of the tokens' log-probabilities divided by `len^alpha`.
    pub score: f64,
}

/// Index of the largest value (the lowest on ties).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// `log_softmax(v)` in f64.
fn log_softmax(v: &[f32]) -> Vec<f64> {
    let max = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let lse = max + v.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    v.iter().map(|&x| x as f64 - lse).collect()
}

fn check(decoder: &Decoder, max_new_tokens: usize) -> Result<()> {
    if max_new_tokens == 0 || max_new_tokens > decoder.dims.max_length {
        bail!(
            "max_new_tokens must be in 1..={} (the decoder's max_length), got {max_new_tokens}",
            decoder.dims.max_length
        );
    }
    Ok(())
}

/// How decoding runs the decoder: one token per row per step, giving that step's logits
/// `[rows, V]`; beam search also reorders the rows' histories between steps.
pub trait Stepper {
    fn rows(&self) -> usize;
    fn step(&mut self, tokens: &[u32]) -> Result<Tensor>;
    fn reorder(&mut self, parents: &[u32]) -> Result<()>;
}

/// Steps over the decoder's key/value cache: one position per step.
pub struct Cached<'a> {
    decoder: &'a Decoder,
    w: &'a ArenaSet,
    cache: DecoderCache,
}

impl<'a> Cached<'a> {
    /// `copies` rows per memory row, for up to `capacity` steps.
    pub fn new(
        decoder: &'a Decoder,
        w: &'a ArenaSet,
        memory: &Memory<'_>,
        copies: usize,
        capacity: usize,
    ) -> Result<Self> {
        let cache = decoder.start_cache(w, memory, copies, capacity)?;
        Ok(Self { decoder, w, cache })
    }
}

impl Stepper for Cached<'_> {
    fn rows(&self) -> usize {
        self.cache.rows
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        self.decoder.step(self.w, &mut self.cache, tokens)
    }

    fn reorder(&mut self, parents: &[u32]) -> Result<()> {
        self.cache.reorder(parents)
    }
}

/// Steps without a cache: every step re-runs the decoder over each row's whole prefix and
/// keeps the last position's logits (n tokens cost n(n+1)/2 positions). The baseline the
/// cache is measured and checked against.
pub struct Uncached<'a> {
    decoder: &'a Decoder,
    w: &'a ArenaSet,
    states: Tensor,
    mask: Tensor,
    tk: usize,
    history: Vec<Vec<u32>>,
}

impl<'a> Uncached<'a> {
    /// `copies` rows per memory row.
    pub fn new(
        decoder: &'a Decoder,
        w: &'a ArenaSet,
        memory: &Memory<'_>,
        copies: usize,
    ) -> Result<Self> {
        let (states, mask) = decoder.repeat_memory(memory, copies)?;
        let rows = mask.numel() / memory.tk;
        Ok(Self {
            decoder,
            w,
            states,
            mask,
            tk: memory.tk,
            history: vec![Vec::new(); rows],
        })
    }
}

impl Stepper for Uncached<'_> {
    fn rows(&self) -> usize {
        self.history.len()
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        if tokens.len() != self.history.len() {
            bail!(
                "decoder step: {} tokens for {} rows",
                tokens.len(),
                self.history.len()
            );
        }
        for (h, &t) in self.history.iter_mut().zip(tokens) {
            h.push(t);
        }
        let (rows, len) = (self.history.len(), self.history[0].len());
        let ids: Vec<u32> = self.history.concat();
        let gpu = self.states.gpu();
        let inputs = DecoderInputs::new(gpu, &ids, rows, self.decoder.dims.vocab, 0, false)?;
        let memory = Memory {
            states: &self.states,
            mask: &self.mask,
            tk: self.tk,
        };
        let (x, _) = self
            .decoder
            .forward(self.w, &inputs, &memory, Mode::Infer)?;
        let last: Vec<u32> = (0..rows).map(|r| (r * len + len - 1) as u32).collect();
        let last = Tensor::from_slice(gpu, &last, &[rows])?;
        let d = self.decoder.dims.layer.hidden;
        let x_last = embedding_forward(&last, &x.reshape(&[rows * len, d])?)?;
        self.decoder.output.logits(self.w, &x_last)
    }

    fn reorder(&mut self, parents: &[u32]) -> Result<()> {
        self.history = parents
            .iter()
            .map(|&p| self.history[p as usize].clone())
            .collect();
        Ok(())
    }
}

/// Greedy decoding of every memory row: the generated tokens of each, scored by the sum of
/// their log-probabilities.
pub async fn greedy(
    decoder: &Decoder,
    w: &ArenaSet,
    memory: &Memory<'_>,
    special: Special,
    max_new_tokens: usize,
) -> Result<Vec<Hypothesis>> {
    check(decoder, max_new_tokens)?;
    let mut stepper = Cached::new(decoder, w, memory, 1, max_new_tokens)?;
    greedy_with(&mut stepper, w, decoder.dims.vocab, special, max_new_tokens).await
}

/// [`greedy`] over any [`Stepper`] (one row per input).
pub async fn greedy_with(
    stepper: &mut dyn Stepper,
    w: &ArenaSet,
    vocab: usize,
    special: Special,
    max_new_tokens: usize,
) -> Result<Vec<Hypothesis>> {
    let rows = stepper.rows();
    let mut out = vec![
        Hypothesis {
            tokens: Vec::new(),
            score: 0.0,
        };
        rows
    ];
    let mut done = vec![false; rows];
    let mut feed = vec![special.bos; rows];
    for _ in 0..max_new_tokens {
        let logits = stepper.step(&feed)?;
        let logits = w.gpu().read_f32(&[&logits]).await?.remove(0);
        for r in 0..rows {
            if done[r] {
                feed[r] = special.pad;
                continue;
            }
            let row = &logits[r * vocab..(r + 1) * vocab];
            let t = argmax(row);
            out[r].tokens.push(t);
            out[r].score += log_softmax(row)[t as usize];
            feed[r] = t;
            done[r] = t == special.eos;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    Ok(out)
}

/// A live beam: its generated tokens and summed log-probability.
#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f64,
}

/// One input's search.
struct Search {
    live: Vec<Beam>,
    finished: Vec<Hypothesis>,
    done: bool,
}

/// `(score, beam, token)`, ordered best first.
fn candidate_order(a: &(f64, usize, u32), b: &(f64, usize, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
}

fn hypothesis_order(a: &Hypothesis, b: &Hypothesis) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.tokens.len().cmp(&b.tokens.len()))
        .then(a.tokens.cmp(&b.tokens))
}

/// Beam search of every memory row: its `k` best hypotheses, best first.
pub async fn beam(
    decoder: &Decoder,
    w: &ArenaSet,
    memory: &Memory<'_>,
    special: Special,
    k: usize,
    alpha: f64,
    max_new_tokens: usize,
) -> Result<Vec<Vec<Hypothesis>>> {
    check(decoder, max_new_tokens)?;
    if k == 0 {
        bail!("beam width must be at least 1");
    }
    let mut stepper = Cached::new(decoder, w, memory, k, max_new_tokens)?;
    let vocab = decoder.dims.vocab;
    beam_with(&mut stepper, w, vocab, special, k, alpha, max_new_tokens).await
}

/// [`beam`] over any [`Stepper`] (`k` rows per input).
pub async fn beam_with(
    stepper: &mut dyn Stepper,
    w: &ArenaSet,
    vocab: usize,
    special: Special,
    k: usize,
    alpha: f64,
    max_new_tokens: usize,
) -> Result<Vec<Vec<Hypothesis>>> {
    let rows = stepper.rows();
    let inputs = rows / k;
    let mut searches: Vec<Search> = (0..inputs)
        .map(|_| Search {
            live: vec![Beam {
                tokens: Vec::new(),
                score: 0.0,
            }],
            finished: Vec::new(),
            done: false,
        })
        .collect();
    let mut feed: Vec<u32> = (0..rows)
        .map(|r| if r % k == 0 { special.bos } else { special.pad })
        .collect();
    for s in 1..=max_new_tokens {
        let logits = stepper.step(&feed)?;
        let logits = w.gpu().read_f32(&[&logits]).await?.remove(0);
        let mut parents: Vec<u32> = (0..rows as u32).collect();
        let length = (s as f64).powf(alpha);
        for (b, search) in searches.iter_mut().enumerate() {
            if search.done {
                continue;
            }
            let mut candidates = Vec::with_capacity(search.live.len() * vocab);
            for (j, beam) in search.live.iter().enumerate() {
                let row = b * k + j;
                let lp = log_softmax(&logits[row * vocab..(row + 1) * vocab]);
                candidates.extend(
                    lp.iter()
                        .enumerate()
                        .map(|(t, l)| (beam.score + l, j, t as u32)),
                );
            }
            // At most one EOS per live beam precedes the k-th live candidate: 2k suffice.
            let keep = (2 * k).min(candidates.len());
            if keep < candidates.len() {
                candidates.select_nth_unstable_by(keep, candidate_order);
                candidates.truncate(keep);
            }
            candidates.sort_by(candidate_order);
            let mut live = Vec::with_capacity(k);
            for (rank, &(score, j, t)) in candidates.iter().enumerate() {
                let mut tokens = search.live[j].tokens.clone();
                tokens.push(t);
                if t == special.eos {
                    if rank < k {
                        search.finished.push(Hypothesis {
                            tokens,
                            score: score / length,
                        });
                    }
                    continue;
                }
                parents[b * k + live.len()] = (b * k + j) as u32;
                live.push(Beam { tokens, score });
                if live.len() == k {
                    break;
                }
            }
            search.live = live;
            if search.finished.len() >= k {
                search.done = true;
            } else if s == max_new_tokens {
                for beam in search.live.drain(..) {
                    search.finished.push(Hypothesis {
                        tokens: beam.tokens,
                        score: beam.score / length,
                    });
                }
                search.done = true;
            }
            for j in 0..k {
                let row = b * k + j;
                feed[row] = match search.live.get(j).filter(|_| !search.done) {
                    Some(beam) => *beam.tokens.last().expect("a live beam has a token"),
                    None => special.pad,
                };
            }
        }
        if searches.iter().all(|s| s.done) {
            break;
        }
        stepper.reorder(&parents)?;
    }
    Ok(searches
        .into_iter()
        .map(|mut s| {
            s.finished.sort_by(hypothesis_order);
            s.finished.truncate(k);
            s.finished
        })
        .collect())
}
