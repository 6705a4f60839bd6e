//! A training step records its work and returns without waiting for the GPU: no readback and
//! no device wait inside `Trainer::train_step`, nor in setting the task weights before each
//! step; only reading its output waits. (Its own test binary, so no other test's readbacks
//! touch the shared device's counter.)

use taskgate::Gpu;
use taskgate::bench::train::{bench_spec, synthetic_batch};
use taskgate::model::MultiTaskModel;
use taskgate::model::host::HostParams;
use taskgate::model::init::init_missing;
use taskgate::ops::adamw::AdamW;
use taskgate::train::{Decay, LrSchedule, TrainOptions, Trainer};

#[test]
fn training_steps_never_wait_for_the_gpu() {
    let gpu = Gpu::from_env_blocking().unwrap();
    let spec = bench_spec("tiny").unwrap();
    let mut params = HostParams::new();
    init_missing(&spec, &mut params).unwrap();
    let model = MultiTaskModel::new(&gpu, spec, &params).unwrap();
    let options = TrainOptions {
        schedule: LrSchedule {
            peak: 1e-4,
            warmup: 2,
            total: 10,
            decay: Decay::Linear,
        },
        adamw: AdamW::default(),
        clip: 1.0,
    };
    let mut trainer = Trainer::new(model, options).unwrap();
    let batch = synthetic_batch(4, 16);
    let first = trainer.train_step(&batch).unwrap().read().unwrap();
    assert!(first.loss.is_finite());

    let before = gpu.host_waits();
    let mut outputs = Vec::new();
    // New task weights every step, none of the steps read back yet: each step must use its own.
    let weights = [[0.5, 1.0, 2.0], [3.0, 0.25, 1.0], [1.0, 1.0, 0.0]];
    for w in &weights {
        trainer.model.set_task_weights(w).unwrap();
        outputs.push(trainer.train_step(&batch).unwrap());
    }
    assert_eq!(
        gpu.host_waits(),
        before,
        "a training step waited for the GPU"
    );
    let last = outputs.pop().unwrap().read().unwrap();
    assert!(last.loss.is_finite());
    assert_eq!(
        gpu.host_waits(),
        before + 1,
        "reading a step's output is one wait"
    );
    let mut stats: Vec<_> = outputs.iter().map(|o| o.read().unwrap()).collect();
    stats.push(last);
    for (w, s) in weights.iter().zip(&stats) {
        let weighted: f32 = s
            .task_losses
            .iter()
            .zip(w)
            .map(|(l, w)| l.expect("every task is labelled") * w)
            .sum();
        assert!(
            (s.loss - weighted).abs() <= 1e-5 * weighted.abs().max(1.0),
            "step with weights {w:?}: total {} but sum w_i L_i = {weighted}",
            s.loss
        );
    }
}
