//! `taskgate dump --model DIR --batch FILE.jsonl --out FILE.safetensors`.

use std::path::Path;

use anyhow::Result;

use crate::data::read_examples;
use crate::files::refuse_input;
use crate::gpu::{AdapterRequest, Gpu};
use crate::model::ModelDir;
use crate::model::dump::{DumpData, dump};
use crate::model::host::{OutTensor, write_safetensors};

pub fn run(request: &AdapterRequest, model: &Path, batch: &Path, out: &Path) -> Result<()> {
    let model_files = ModelDir::files(model);
    let mut inputs: Vec<&Path> = model_files.iter().map(|p| p.as_path()).collect();
    inputs.push(batch);
    refuse_input(out, &inputs, "--out")?;
    let dir = ModelDir::load(model)?;
    let examples = read_examples(batch, &dir.spec.tasks, &dir.tokenizer)?;
    let gpu = pollster::block_on(Gpu::new(request))?;
    let tensors = dump(&gpu, &dir, &examples)?;
    let views: Vec<(String, OutTensor<'_>)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let t = match data {
                DumpData::F32(v) => OutTensor::F32(shape, v),
                DumpData::I32(v) => OutTensor::I32(shape, v),
            };
            (name.clone(), t)
        })
        .collect();
    write_safetensors(out, &views)?;
    println!(
        "wrote {} tensors for {} examples to {} (adapter: {})",
        views.len(),
        examples.len(),
        out.display(),
        gpu.adapter_info().name
    );
    Ok(())
}
