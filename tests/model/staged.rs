//! The staged backward: one d(hidden) per task, combined with the task weights and pushed
//! through the encoder into a second gradient set, equals the joint backward.

use taskgate::data::{Batch, collate};
use taskgate::gpu::{DType, Tensor};
use taskgate::model::host::HostParams;
use taskgate::model::multitask::HiddenGrads;
use taskgate::model::{DeviceBatch, ModelSpec, MultiTaskModel};
use taskgate::nn::Mode;
use taskgate::ops::elementwise::accumulate;

use crate::common::gpu;
use crate::training::{examples, init, spec, trainer};

/// `|a - b| / |a|` over a whole tensor (L2 norms). The key bias's gradient is zero in exact
/// arithmetic (softmax ignores a shift of all scores), so what both backwards compute there is
/// rounding noise: norms below `FLOOR` count as `FLOOR`.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    const FLOOR: f64 = 1e-4;
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    diff.sqrt() / norm.sqrt().max(FLOOR)
}

/// Batch i of three holds `size + i` examples (seed `seed + i`) labelled for task i only, as
/// training files make them.
fn one_task_batches(spec: &ModelSpec, size: usize, seed: u64) -> Vec<Batch> {
    (0..3)
        .map(|i| {
            let mut ex = examples(size + i, seed + i as u64);
            for e in &mut ex {
                for (t, label) in e.labels.iter_mut().enumerate() {
                    if t != i {
                        *label = None;
                    }
                }
            }
            collate(&ex, &spec.tasks, 0)
        })
        .collect()
}

#[test]
fn per_task_hidden_gradients_summed_through_the_encoder_equal_the_joint_backward() {
    let mut spec = spec(0.1);
    let lambdas = [0.7f32, 1.3, 0.4];
    for (task, &l) in spec.tasks.iter_mut().zip(&lambdas) {
        task.lambda = l;
    }
    let params = init(&spec);
    let model = MultiTaskModel::new(gpu(), spec.clone(), &params).unwrap();
    let batch = collate(&examples(8, 11), &spec.tasks, 0);
    let device_batch = DeviceBatch::new(gpu(), &batch, &spec.encoder, true).unwrap();
    // Dropout on: both passes regenerate the same masks from (seed, step, site).
    let mode = Mode::Train { seed: 3, step: 5 };

    model.store.zero_grads();
    let pass = model.forward(&device_batch, mode, None).unwrap();
    let joint_losses = model
        .backward(
            &pass,
            &device_batch,
            &batch.targets,
            &model.store.grads,
            mode,
        )
        .unwrap();
    let joint: HostParams = model.store.download_grads().unwrap();

    let staged_grads = model.store.grads.zeros_like().unwrap();
    let pass = model.forward(&device_batch, mode, None).unwrap();
    let losses = model
        .task_losses(&pass, &batch.targets, HiddenGrads::PerTask)
        .unwrap();
    let per_task = model
        .backward_tasks_each(&pass, &device_batch, &losses, &staged_grads)
        .unwrap();
    assert_eq!(per_task.len(), 3);
    let err = model
        .backward_tasks_summed(&pass, &device_batch, &losses, &staged_grads)
        .expect_err("per-task losses are not for the weighted sum")
        .to_string();
    assert!(err.contains("PerTask"), "{err}");
    let combined = Tensor::zeros(gpu(), pass.hidden.shape(), DType::F32).unwrap();
    for (dh, &l) in per_task.iter().zip(&lambdas) {
        accumulate(&combined, dh.as_ref().expect("every task is labelled"), l).unwrap();
    }
    model
        .backward_encoder(&pass, &device_batch, combined, &staged_grads, mode)
        .unwrap();
    let staged = model.store.download_set(&staged_grads).unwrap();

    // The losses agree, and so does every gradient: the encoder's exactly as the joint
    // backward's, each task's as its own unweighted loss's (the joint one over lambda).
    for (i, loss) in losses.per_task.iter().enumerate() {
        let a = loss.as_ref().unwrap().loss.to_vec::<f32>().unwrap()[0];
        let b = joint_losses.per_task[i]
            .as_ref()
            .unwrap()
            .to_vec::<f32>()
            .unwrap()[0];
        assert_eq!(a, b, "task {i} loss");
    }
    let mut checked = 0;
    let mut worst = 0f64;
    for p in spec.param_specs() {
        let scale = spec
            .tasks
            .iter()
            .position(|t| p.name.starts_with(&format!("tasks.{}.", t.name)))
            .map_or(1.0, |i| lambdas[i]);
        let ours: Vec<f32> = staged[&p.name].data.iter().map(|g| g * scale).collect();
        let err = relative(&joint[&p.name].data, &ours);
        assert!(err <= 1e-6, "{}: relative error {err:e}", p.name);
        worst = worst.max(err);
        checked += 1;
    }
    assert_eq!(checked, joint.len());
    eprintln!("{checked} gradients, largest relative difference {worst:.1e}");
}

/// Task weights given as a GPU tensor (as a weighting method computing them on the GPU would)
/// act exactly as the same weights uploaded from the host.
#[test]
fn task_weights_from_a_gpu_tensor_equal_uploaded_ones() {
    let spec = spec(0.0);
    let params = init(&spec);
    let batch = collate(&examples(6, 3), &spec.tasks, 0);
    let weights = [0.25f32, 2.0, 0.5];
    let mut grads = Vec::new();
    for on_gpu in [false, true] {
        let mut model = MultiTaskModel::new(gpu(), spec.clone(), &params).unwrap();
        if on_gpu {
            let tensor = Tensor::from_slice(gpu(), &weights, &[3]).unwrap();
            model.set_task_weights_tensor(tensor).unwrap();
        } else {
            model.set_task_weights(&weights).unwrap();
        }
        assert_eq!(model.task_weights().to_vec::<f32>().unwrap(), weights);
        let device_batch = DeviceBatch::new(gpu(), &batch, &spec.encoder, true).unwrap();
        model.store.zero_grads();
        let pass = model.forward(&device_batch, Mode::Eval, None).unwrap();
        model
            .backward(
                &pass,
                &device_batch,
                &batch.targets,
                &model.store.grads,
                Mode::Eval,
            )
            .unwrap();
        grads.push(model.store.download_grads().unwrap());
    }
    for (name, t) in &grads[0] {
        assert_eq!(t.data, grads[1][name].data, "{name}");
    }
    let mut model = MultiTaskModel::new(gpu(), spec.clone(), &params).unwrap();
    assert!(
        model.set_task_weights(&[1.0, 1.0]).is_err(),
        "one weight per task"
    );
    assert!(model.set_task_weights(&[1.0, f32::NAN, 1.0]).is_err());
    let wrong = Tensor::from_slice(gpu(), &[1.0f32; 4], &[4]).unwrap();
    assert!(model.set_task_weights_tensor(wrong).is_err());
}

/// `mixing = "all_tasks"`: one step over a batch of every task adds up exactly the gradients
/// the lambda-weighted single-task steps on those batches make.
#[test]
fn an_all_tasks_step_sums_the_single_task_steps_gradients() {
    let mut spec = spec(0.0);
    let lambdas = [0.7f32, 1.3, 0.4];
    for (task, &l) in spec.tasks.iter_mut().zip(&lambdas) {
        task.lambda = l;
    }
    let params = init(&spec);
    let batches = one_task_batches(&spec, 5, 20);
    let mut all = trainer(&spec, &params, 10);
    let stats = all.train_batches(&batches).unwrap().read().unwrap();
    let joint = all.model.store.download_grads().unwrap();
    let mut summed: Option<HostParams> = None;
    let mut weighted_losses = 0.0;
    for (i, batch) in batches.iter().enumerate() {
        let mut single = trainer(&spec, &params, 10);
        let s = single.train_step(batch).unwrap().read().unwrap();
        weighted_losses += lambdas[i] * s.task_losses[i].unwrap();
        let grads = single.model.store.download_grads().unwrap();
        match summed.as_mut() {
            None => summed = Some(grads),
            Some(sum) => {
                for (name, t) in grads {
                    let acc = sum.get_mut(&name).unwrap();
                    for (a, g) in acc.data.iter_mut().zip(&t.data) {
                        *a += g;
                    }
                }
            }
        }
    }
    let summed = summed.unwrap();
    for name in [
        "encoder.layer.0.attention.self.query.weight",
        "tasks.mod3.head.1.weight",
    ] {
        assert!(
            joint[name].data.iter().any(|g| *g != 0.0),
            "{name} has a gradient"
        );
    }
    let mut worst = 0f64;
    for (name, t) in &joint {
        let err = relative(&summed[name].data, &t.data);
        assert!(err <= 1e-5, "{name}: relative difference {err:e}");
        worst = worst.max(err);
    }
    assert!((stats.loss - weighted_losses).abs() <= 1e-5 * weighted_losses.abs());
    eprintln!(
        "{} gradients, largest relative difference {worst:.1e}",
        joint.len()
    );
}

/// The task-gradient path of a step (`mgda`, `pcgrad`): each task's batch backwards into its
/// own gradient set, the Gram matrix of the tasks' encoder gradients is read back, and the
/// step's gradient is `sum_k a_k g_k` on the encoder and each task's own gradient on its head.
/// Checked against single-task steps' gradients combined on the host: the logged cosines,
/// the method's coefficients recomputed from the host Gram matrix, and every gradient. And
/// FAMO's path (every forward first, weights from the read-back losses, then the weighted
/// backwards): `sum_k a_k g_k` on every parameter, heads included.
#[test]
fn a_gradient_method_step_combines_the_task_gradients_by_its_coefficients() {
    use taskgate::config::{Mixing, TrainConfig, Weighting};
    use taskgate::train::weighting::{Weighter, methods};

    let spec = spec(0.0);
    let params = init(&spec);
    let batches = one_task_batches(&spec, 4, 40);
    let mut single_losses = Vec::new();
    let singles: Vec<HostParams> = batches
        .iter()
        .enumerate()
        .map(|(i, batch)| {
            let mut single = trainer(&spec, &params, 10);
            let stats = single.train_step(batch).unwrap().read().unwrap();
            single_losses.push(stats.task_losses[i].unwrap() as f64);
            single.model.store.download_grads().unwrap()
        })
        .collect();
    let names: Vec<String> = singles[0].keys().cloned().collect();
    let is_head = |name: &str| name.starts_with("tasks.");
    let mut gram = vec![vec![0.0f64; 3]; 3];
    for name in names.iter().filter(|n| !is_head(n)) {
        for i in 0..3 {
            for j in 0..3 {
                gram[i][j] += singles[i][name]
                    .data
                    .iter()
                    .zip(&singles[j][name].data)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>();
            }
        }
    }
    for method in [Weighting::Mgda, Weighting::Pcgrad, Weighting::Famo] {
        let config = TrainConfig {
            weighting: method,
            mixing: Mixing::AllTasks,
            ..Default::default()
        };
        let mut t = trainer(&spec, &params, 10);
        t.weighter = Weighter::new(&config, 3, 1);
        let output = gpu()
            .block_on(t.train_batches_async(&batches, Some(&[0, 1, 2])))
            .unwrap()
            .unwrap();
        let stats = output.read().unwrap();
        let joint = t.model.store.download_grads().unwrap();
        if method == Weighting::Famo {
            // FAMO weights losses: no gradient cosines; its first step's weights follow from
            // uniform logits and the losses alone.
            assert!(stats.cosines.is_none());
            let expected = methods::famo_weights(&[0.0; 3], &single_losses, &[0.0; 3]);
            for (ours, host) in stats.weights.iter().zip(&expected) {
                assert!(
                    (*ours as f64 - host).abs() < 1e-5,
                    "{:?} vs {expected:?}",
                    stats.weights
                );
            }
        }
        let cosines = methods::cosines(&gram);
        for (ours, host) in stats.cosines.iter().flatten().zip(&cosines) {
            assert!(
                (*ours as f64 - host).abs() < 1e-4,
                "{method:?} cosines {stats:?} vs {cosines:?}"
            );
        }
        if method == Weighting::Mgda {
            let expected = methods::mgda(&gram);
            for (ours, host) in stats.weights.iter().zip(&expected) {
                assert!(
                    (*ours as f64 - host).abs() < 1e-3,
                    "{:?} vs {expected:?}",
                    stats.weights
                );
            }
        }
        let a = &stats.weights;
        for name in &names {
            let want: Vec<f32> = if is_head(name) && method != Weighting::Famo {
                // Only the labelled task's head has a gradient, its own.
                (0..singles[0][name].data.len())
                    .map(|e| singles.iter().map(|s| s[name].data[e]).sum())
                    .collect()
            } else {
                (0..singles[0][name].data.len())
                    .map(|e| (0..3).map(|k| a[k] * singles[k][name].data[e]).sum())
                    .collect()
            };
            let err = relative(&want, &joint[name].data);
            assert!(
                err <= 1e-5,
                "{method:?} {name}: relative difference {err:e}"
            );
        }
    }
}

/// A backward that stops above frozen stages (`frozen_below`) computes the gradients of the
/// stages it reaches exactly as the full backward does, and none below them; stopping above
/// everything leaves the encoder without gradients and the heads' unchanged.
#[test]
fn a_backward_stopped_above_frozen_stages_keeps_the_gradients_above() {
    let spec = spec(0.1);
    let layers = spec.encoder.layers;
    assert!(
        layers >= 2,
        "the test needs a layer on each side of the stop"
    );
    let params = init(&spec);
    let mut model = MultiTaskModel::new(gpu(), spec.clone(), &params).unwrap();
    let batch = collate(&examples(8, 11), &spec.tasks, 0);
    let device_batch = DeviceBatch::new(gpu(), &batch, &spec.encoder, true).unwrap();
    let mode = Mode::Train { seed: 3, step: 5 };
    let grads = |model: &MultiTaskModel| -> HostParams {
        model.store.zero_grads();
        let pass = model.forward(&device_batch, mode, None).unwrap();
        model
            .backward(
                &pass,
                &device_batch,
                &batch.targets,
                &model.store.grads,
                mode,
            )
            .unwrap();
        model.store.download_grads().unwrap()
    };
    let full = grads(&model);
    // Stages: embeddings 0, layer i at i + 1.
    for frozen_below in [1, 2, layers + 1] {
        model.frozen_below = frozen_below;
        let stopped = grads(&model);
        for (name, g) in &stopped {
            let stage = taskgate::nn::encoder::encoder_stage(name);
            if stage.is_some_and(|s| s < frozen_below) {
                assert!(
                    g.data.iter().all(|&x| x == 0.0),
                    "{name}: below the stop ({frozen_below}), no gradient"
                );
            } else {
                assert_eq!(
                    g.data, full[name].data,
                    "{name}: above the stop ({frozen_below})"
                );
            }
        }
    }
}

/// `layer_lr_decay`: after one AdamW step from fresh moments (an update of `lr * g / (|g| +
/// eps)` plus decoupled weight decay, both proportional to the learning rate), each encoder
/// tensor moved by its layer's factor times what the undecayed step moved it, and the tasks
/// exactly as much.
#[test]
fn layer_lr_decay_scales_each_layers_step() {
    use taskgate::config::TrainConfig;
    use taskgate::train::Optimizer;
    use taskgate::train::steps::param_plan;

    let spec = spec(0.0);
    let layers = spec.encoder.layers;
    let params = init(&spec);
    let batch = collate(&examples(8, 11), &spec.tasks, 0);
    let moved = |decay: f64| -> HostParams {
        let mut trainer = trainer(&spec, &params, 100);
        let config = TrainConfig {
            layer_lr_decay: decay,
            ..Default::default()
        };
        let plan = param_plan(&config, &spec).unwrap();
        let options = trainer.options;
        trainer.optimizer =
            Optimizer::with_plan(&trainer.model.store, options.adamw, options.clip, &plan).unwrap();
        trainer.train_step(&batch).unwrap();
        let after = trainer.model.store.download_params().unwrap();
        after
            .into_iter()
            .map(|(name, mut t)| {
                for (x, x0) in t.data.iter_mut().zip(&params[&name].data) {
                    *x -= x0;
                }
                (name, t)
            })
            .collect()
    };
    let (base, decayed) = (moved(1.0), moved(0.5));
    for (name, delta) in &decayed {
        let scale = match taskgate::nn::encoder::encoder_stage(name) {
            Some(stage) => 0.5f64.powi((layers - stage) as i32),
            None => 1.0,
        };
        let (mut checked, mut worst) = (0, 0.0f64);
        for (d, b) in delta.data.iter().zip(&base[name].data) {
            if b.abs() > 1e-6 {
                worst = worst.max((*d as f64 / *b as f64 - scale).abs() / scale);
                checked += 1;
            }
        }
        assert!(
            worst < 1e-3,
            "{name}: step ratio off {scale} by {worst} (relative)"
        );
        if !name.ends_with("attention.self.key.bias") {
            assert!(checked > 0, "{name} moved");
        }
    }
}
