//! `taskgate bench decode`: the speed of text generation, in generated tokens per second, for
//! greedy and beam-4 decoding, with the decoder's key/value cache and without it (every step
//! re-running the decoder over the whole prefixes, `model::generate::Uncached`). The model is
//! one of `bench train`'s encoders with a generation task (a warm-startable 2-layer decoder,
//! random weights); the end token is never honoured, so every search runs all its steps.

use std::time::Instant;

use anyhow::Result;

use super::train::{bench_spec, generation_task};
use crate::data::{Batch, TaskTargets};
use crate::gpu::Gpu;
use crate::model::MultiTaskModel;
use crate::model::generate::{Cached, Special, Stepper, Uncached, beam_with, greedy_with};
use crate::model::host::HostParams;
use crate::model::init::init_missing;
use crate::model::multitask::TaskHead;
use crate::nn::decoder::Memory;
use crate::nn::{DeviceBatch, Mode};

/// Options of `bench decode`.
#[derive(Clone, Debug)]
pub struct DecodeBench {
    pub model: String,
    pub batch: usize,
    pub seq: usize,
    pub new_tokens: usize,
    pub samples: usize,
}

/// Times the four searches; prints a table (median seconds and tokens/s of `samples` runs
/// after one warm-up).
pub fn run(gpu: &Gpu, opts: &DecodeBench) -> Result<()> {
    let mut spec = bench_spec(&opts.model)?;
    spec.tasks = vec![generation_task(opts.new_tokens)];
    spec.resolve_decoders();
    let mut params = HostParams::new();
    init_missing(&spec, &mut params)?;
    let model = MultiTaskModel::new(gpu, spec.clone(), &params)?;
    let (b, t) = (opts.batch, opts.seq);
    let batch = Batch {
        batch: b,
        seq: t,
        ids: (0..b * t)
            .map(|i| (1000 + (i * 7919) % 20000) as u32)
            .collect(),
        type_ids: vec![0; b * t],
        attention: vec![1; b * t],
        pad_id: 0,
        targets: vec![TaskTargets::Sequences {
            inputs: Vec::new(),
            labels: Vec::new(),
            seq: 0,
        }],
    };
    let device_batch = DeviceBatch::new(gpu, &batch, &spec.encoder, false)?;
    let pass = model.forward(&device_batch, Mode::Infer, None)?;
    let TaskHead::Decoder(decoder) = &model.tasks[0].head else {
        unreachable!("a generation task has a decoder");
    };
    let gated = &pass.tasks[0].as_ref().expect("run").gated;
    let memory = Memory {
        states: gated,
        mask: &device_batch.mask,
        tk: t,
    };
    let w = model.params();
    // An end token no search produces: every search runs `new_tokens` steps.
    let special = Special {
        bos: 101,
        eos: u32::MAX,
        pad: 0,
    };
    let n = opts.new_tokens;
    let vocab = decoder.dims.vocab;
    println!(
        "{} encoder, decoder 2 layers, batch {b}, input {t} tokens, {n} new tokens per input",
        opts.model
    );
    println!(
        "{:<8} {:<10} {:>12} {:>12}",
        "search", "cache", "seconds", "tokens/s"
    );
    for (search, k) in [("greedy", 1), ("beam 4", 4)] {
        for cached in [true, false] {
            let mut times = Vec::new();
            for _ in 0..=opts.samples.max(1) {
                let mut stepper: Box<dyn Stepper + '_> = if cached {
                    Box::new(Cached::new(decoder, w, &memory, k, n)?)
                } else {
                    Box::new(Uncached::new(decoder, w, &memory, k)?)
                };
                let start = Instant::now();
                if k == 1 {
                    gpu.block_on(greedy_with(stepper.as_mut(), w, vocab, special, n))??;
                } else {
                    gpu.block_on(beam_with(stepper.as_mut(), w, vocab, special, k, 1.0, n))??;
                }
                times.push(start.elapsed().as_secs_f64());
            }
            times.remove(0); // the warm-up compiles pipelines
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let tokens = (b * n) as f64;
            let cache = if cached { "kv cache" } else { "none" };
            println!(
                "{search:<8} {cache:<10} {median:>12.3} {:>12.1}",
                tokens / median
            );
        }
    }
    Ok(())
}
