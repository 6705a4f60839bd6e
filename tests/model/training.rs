//! Training end to end on synthetic multi-task data whose labels are functions of the
//! tokens: a classification (does token 7 occur?), a regression (the share of tokens >= 14)
//! and a token task (each token's id mod 3). A tiny model must fit them, and a seeded run
//! must be bit-identical when repeated.

use rand::{Rng, SeedableRng};
use taskgate::config::{GateMode, HeadConfig, Pooling};
use taskgate::data::{Batch, Example, Label, TaskTargets, collate};
use taskgate::model::host::HostParams;
use taskgate::model::init::init_missing;
use taskgate::model::spec::{EncoderDims, ModelSpec};
use taskgate::model::{DeviceBatch, MultiTaskModel};
use taskgate::nn::Mode;
use taskgate::ops::activation::Activation;
use taskgate::ops::adamw::AdamW;
use taskgate::tasks::{TaskKind, TaskSpec};
use taskgate::tokenize::Encoded;
use taskgate::train::{Decay, LrSchedule, TrainOptions, Trainer};

use crate::common::gpu;

const VOCAB: usize = 24;

fn task(
    name: &str,
    kind: TaskKind,
    labels: Option<&[&str]>,
    gate: GateMode,
    pooling: Pooling,
) -> TaskSpec {
    TaskSpec {
        name: name.into(),
        kind,
        labels: labels.map(|l| l.iter().map(|s| s.to_string()).collect()),
        outputs: None,
        gate,
        pooling: (kind != TaskKind::TOKEN_CLASSIFICATION).then_some(pooling),
        head: HeadConfig {
            hidden: vec![16],
            activation: Activation::Gelu,
        },
        lambda: 1.0,
        ..TaskSpec::new(name, kind)
    }
}

pub fn spec(dropout: f32) -> ModelSpec {
    ModelSpec {
        encoder: EncoderDims {
            vocab_size: VOCAB,
            hidden: 32,
            layers: 2,
            heads: 4,
            intermediate: 64,
            max_positions: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            dropout,
            attention_dropout: dropout,
            seed: 3,
            max_length: 16,
        },
        tasks: vec![
            task(
                "has7",
                TaskKind::CLASSIFICATION,
                Some(&["no", "yes"]),
                GateMode::Scalar,
                Pooling::Cls,
            ),
            task(
                "share",
                TaskKind::REGRESSION,
                None,
                GateMode::Vector,
                Pooling::Mean,
            ),
            task(
                "mod3",
                TaskKind::TOKEN_CLASSIFICATION,
                Some(&["0", "1", "2"]),
                GateMode::Scalar,
                Pooling::Cls,
            ),
        ],
    }
}

pub fn examples(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let len = rng.random_range(3..=10);
            let mut tokens: Vec<u32> = (0..len)
                .map(|_| rng.random_range(4..VOCAB as u32))
                .collect();
            if i % 2 == 0 && !tokens.contains(&7) {
                tokens[0] = 7; // balance the classes
            }
            let mut ids = vec![2];
            ids.extend(&tokens);
            ids.push(3);
            let mut word_starts = vec![None];
            word_starts.extend((0..len).map(Some));
            word_starts.push(None);
            let share = tokens.iter().filter(|&&t| t >= 14).count() as f32 / len as f32;
            Example {
                text: String::new(),
                text_pair: None,
                encoded: Encoded {
                    type_ids: vec![0; ids.len()],
                    offsets: vec![None; ids.len()],
                    ids,
                    word_starts,
                    n_words: len,
                },
                labels: vec![
                    Some(Label::Class(tokens.contains(&7) as usize)),
                    Some(Label::Values(vec![share])),
                    Some(Label::Tags(
                        tokens.iter().map(|&t| (t % 3) as usize).collect(),
                    )),
                ],
            }
        })
        .collect()
}

pub fn init(spec: &ModelSpec) -> HostParams {
    let mut params = HostParams::new();
    init_missing(spec, &mut params).unwrap();
    params
}

pub fn trainer(spec: &ModelSpec, params: &HostParams, steps: u64) -> Trainer {
    let model = MultiTaskModel::new(gpu(), spec.clone(), params).unwrap();
    let options = TrainOptions {
        schedule: LrSchedule {
            peak: 3e-3,
            warmup: 10,
            total: steps,
            decay: Decay::Linear,
        },
        adamw: AdamW {
            weight_decay: 0.01,
            ..Default::default()
        },
        clip: 1.0,
    };
    Trainer::new(model, options).unwrap()
}

/// Training accuracy of has7, MSE of share, token accuracy of mod3.
fn evaluate(model: &MultiTaskModel, batches: &[Batch]) -> (f32, f32, f32) {
    let (mut cls_ok, mut cls_n, mut se, mut reg_n, mut tok_ok, mut tok_n) = (0, 0, 0.0, 0, 0, 0);
    for batch in batches {
        let db = DeviceBatch::new(gpu(), batch, &model.spec.encoder, false).unwrap();
        let pass = model.forward(&db, Mode::Infer, None).unwrap();
        let logits: Vec<Vec<f32>> = pass
            .tasks
            .iter()
            .map(|t| t.as_ref().unwrap().logits.to_vec().unwrap())
            .collect();
        if let TaskTargets::Classes(t) = &batch.targets[0] {
            for (row, &label) in t.iter().enumerate() {
                let pred = (logits[0][row * 2 + 1] > logits[0][row * 2]) as i32;
                cls_ok += (pred == label) as usize;
                cls_n += 1;
            }
        }
        if let TaskTargets::Dense { targets, .. } = &batch.targets[1] {
            for (p, t) in logits[1].iter().zip(targets) {
                se += (p - t).powi(2);
                reg_n += 1;
            }
        }
        if let TaskTargets::Tokens(t) = &batch.targets[2] {
            for (pos, &label) in t.iter().enumerate() {
                if label < 0 {
                    continue;
                }
                let row = &logits[2][pos * 3..pos * 3 + 3];
                let pred = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as i32;
                tok_ok += (pred == label) as usize;
                tok_n += 1;
            }
        }
    }
    (
        cls_ok as f32 / cls_n as f32,
        se / reg_n as f32,
        tok_ok as f32 / tok_n as f32,
    )
}

#[test]
fn a_tiny_model_fits_synthetic_multitask_data() {
    let spec = spec(0.1);
    let data = examples(64, 11);
    let batches: Vec<Batch> = data
        .chunks(16)
        .map(|c| collate(c, &spec.tasks, 0))
        .collect();
    let share_var = {
        let v: Vec<f32> = batches
            .iter()
            .flat_map(|b| match &b.targets[1] {
                TaskTargets::Dense { targets, .. } => targets.clone(),
                _ => vec![],
            })
            .collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32
    };
    let steps = 240;
    let mut trainer = trainer(&spec, &init(&spec), steps);
    let before = evaluate(&trainer.model, &batches);
    let mut first = None;
    let mut last = None;
    for step in 0..steps as usize {
        let out = trainer.train_step(&batches[step % batches.len()]).unwrap();
        if step == 0 || step + 1 == steps as usize {
            let stats = out.read().unwrap();
            assert!(stats.loss.is_finite() && !stats.skipped, "{stats:?}");
            if step == 0 {
                first = Some(stats)
            } else {
                last = Some(stats)
            }
        }
    }
    let after = evaluate(&trainer.model, &batches);
    println!(
        "training: before {before:?}, after {after:?} (accuracy, MSE vs variance {share_var:.4}, token accuracy); loss {:?} -> {:?}",
        first.unwrap().loss,
        last.unwrap().loss
    );
    assert!(
        after.0 >= 0.95,
        "classification training accuracy {}",
        after.0
    );
    assert!(
        after.1 <= 0.2 * share_var,
        "regression MSE {} vs target variance {share_var}",
        after.1
    );
    assert!(after.2 >= 0.95, "token training accuracy {}", after.2);
}

#[test]
fn a_seeded_run_is_bit_identical_when_repeated() {
    let spec = spec(0.1);
    let data = examples(32, 5);
    let batches: Vec<Batch> = data.chunks(8).map(|c| collate(c, &spec.tasks, 0)).collect();
    let params = init(&spec);
    let run = || {
        let mut t = trainer(&spec, &params, 6);
        for step in 0..6 {
            t.train_step(&batches[step % batches.len()]).unwrap();
        }
        t.model.store.download_params().unwrap()
    };
    let (a, b) = (run(), run());
    let mut changed = 0;
    for (name, ta) in &a {
        let bits_a: Vec<u32> = ta.data.iter().map(|v| v.to_bits()).collect();
        let bits_b: Vec<u32> = b[name].data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits_a, bits_b, "{name} differs between identical runs");
        changed += (ta.data != params[name].data) as usize;
    }
    assert!(
        changed > a.len() / 2,
        "training moved the parameters ({changed} of {})",
        a.len()
    );
}
