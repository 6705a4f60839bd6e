//! `taskgate dump`: one forward and backward (dropout off) on a batch, with every output a
//! user needs to prove parity with their own PyTorch code (see README.md).

use anyhow::Result;

use super::dir::ModelDir;
use super::multitask::MultiTaskModel;
use crate::data::{Example, collate};
use crate::gpu::{Gpu, Tensor};
use crate::nn::DeviceBatch;
use crate::nn::Mode;

/// One dumped tensor.
pub enum DumpData {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

/// Named tensors in the order they are written.
pub type Dump = Vec<(String, Vec<usize>, DumpData)>;

/// Runs `examples` through the model in `dir` and collects inputs, outputs, losses and
/// gradients under the names documented in README.md.
pub fn dump(gpu: &Gpu, dir: &ModelDir, examples: &[Example]) -> Result<Dump> {
    let spec = &dir.spec;
    let batch = collate(examples, &spec.tasks, dir.tokenizer.pad_id());
    let (b, t, d) = (batch.batch, batch.seq, spec.encoder.hidden);
    let model = MultiTaskModel::new(gpu, spec.clone(), &dir.params)?;
    let device_batch = DeviceBatch::new(gpu, &batch, &spec.encoder, true)?;
    let pass = model.forward(&device_batch, Mode::Eval, None)?;
    let losses = model.backward(
        &pass,
        &device_batch,
        &batch.targets,
        &model.store.grads,
        Mode::Eval,
    )?;

    // Everything to read, with its name and shape; one readback for all of it.
    let mut names: Vec<(String, Vec<usize>)> = Vec::new();
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut want = |name: String, shape: Vec<usize>, t: Tensor| {
        names.push((name, shape));
        tensors.push(t);
    };
    want("hidden".into(), vec![b, t, d], pass.hidden.clone());
    for (i, task) in spec.tasks.iter().enumerate() {
        let tp = pass.tasks[i].as_ref().expect("every task runs in a dump");
        if task.kind.generates_text() {
            // The decoder's last states (its logits are never stored whole).
            let n = tp.logits.numel();
            want(
                format!("decoder.{}", task.name),
                vec![n / d, d],
                tp.logits.clone(),
            );
            if let Some(loss) = &losses.per_task[i] {
                want(format!("loss.{}", task.name), vec![], loss.clone());
            }
            continue;
        }
        let width = task.output_width();
        let shape = if task.kind.is_sequence_level() {
            vec![b, width]
        } else {
            vec![b, t, width]
        };
        want(format!("logits.{}", task.name), shape, tp.logits.clone());
        if let Some(g) = model.tasks[i].gate.values(&tp.gate)? {
            let shape = if g.numel() == b * t {
                vec![b, t]
            } else {
                vec![b, t, d]
            };
            want(format!("gate.{}", task.name), shape, g);
        }
        if let Some(loss) = &losses.per_task[i] {
            want(format!("loss.{}", task.name), vec![], loss.clone());
        }
    }
    want("loss".into(), vec![], losses.total.clone());
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let values = gpu.read_f32_blocking(&refs)?;

    let as_i32 = |v: &[u32]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
    let mut out: Dump = vec![
        (
            "input_ids".into(),
            vec![b, t],
            DumpData::I32(as_i32(&batch.ids)),
        ),
        (
            "token_type_ids".into(),
            vec![b, t],
            DumpData::I32(as_i32(&batch.type_ids)),
        ),
        (
            "attention_mask".into(),
            vec![b, t],
            DumpData::I32(as_i32(&batch.attention)),
        ),
    ];
    for ((name, shape), data) in names.into_iter().zip(values) {
        out.push((name, shape, DumpData::F32(data)));
    }
    for (i, task) in spec.tasks.iter().enumerate() {
        if losses.per_task[i].is_none() {
            out.push((
                format!("loss.{}", task.name),
                vec![],
                DumpData::F32(vec![0.0]),
            ));
        }
    }
    let grads = model.store.download_grads()?;
    for p in spec.param_specs() {
        let g = &grads[&p.name];
        out.push((
            format!("grad.{}", p.name),
            g.shape.clone(),
            DumpData::F32(g.data.clone()),
        ));
    }
    Ok(out)
}
