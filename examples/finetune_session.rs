//! Fine-tunes a model directory on a JSONL file natively with the browser page's engine
//! (`taskgate::session`), printing each step's losses as one JSON line: the same code and
//! kernels the page runs on WebGPU, here on the native adapter. The browser test compares
//! the page's losses with these.
//!
//! `cargo run --example finetune_session -- MODEL_DIR DATA.jsonl ['{"steps": 30, "lr": 0.001}']`
//! (settings as the page sends them; see `taskgate::session::TrainSettings`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use taskgate::gpu::Gpu;
use taskgate::session::{Session, TrainSettings};

fn main() -> Result<()> {
    // SAFETY: the first statement of `main`, before any other thread exists.
    unsafe { taskgate::gpu::adapter::quiet_mesa_device_select() };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, data, settings) = match args.as_slice() {
        [dir, data] => (dir, data, "{}"),
        [dir, data, settings] => (dir, data, settings.as_str()),
        _ => bail!("usage: finetune_session MODEL_DIR DATA.jsonl [SETTINGS_JSON]"),
    };
    let dir = Path::new(dir);
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("cannot read {}", dir.join(name).display()))
    };
    let config = String::from_utf8(read("taskgate.toml")?).context("taskgate.toml is not UTF-8")?;
    let gpu = Gpu::from_env_blocking()?;
    let mut session = Session::load(
        &gpu,
        &config,
        &read("model.safetensors")?,
        read("tokenizer.json")?,
    )?;
    let text = std::fs::read_to_string(data).with_context(|| format!("cannot read {data}"))?;
    let name = Path::new(data)
        .file_name()
        .map_or(data.clone(), |n| n.to_string_lossy().into());
    eprintln!("{}", session.set_training_data(&text, &name)?);
    let settings = TrainSettings::parse(settings)?;
    session.start_training(&settings)?;
    for _ in 0..settings.steps {
        println!("{}", gpu.block_on(session.train_step())??);
    }
    Ok(())
}
