//! The whole model with a generation task beside a classification task, differentiated
//! end to end: the analytic gradient of the joint loss (decoder, its tied word embeddings,
//! the gate, the encoder) against central finite differences of the loss computed by the
//! same model with one weight moved (f32 on the GPU, so a step of 1e-2 and a tolerance of
//! 2e-2 relative + 2e-4 absolute), without dropout and with it (fixed masks). The decoder
//! alone is checked against PyTorch in `decoder.rs`; this checks how its gradients join the
//! rest.

use taskgate::config::ModelConfig;
use taskgate::data::{collate, read_examples};
use taskgate::model::MultiTaskModel;
use taskgate::model::host::HostParams;
use taskgate::model::init::init_from_config;
use taskgate::model::spec::ModelSpec;
use taskgate::nn::{DeviceBatch, Mode};
use taskgate::tokenize::TextTokenizer;

use crate::common::gpu;

const TOKENIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/parity/tokenizer.json"
);

fn loss_and_grads(
    spec: &ModelSpec,
    params: &HostParams,
    batch: &taskgate::data::Batch,
    mode: Mode,
) -> (f64, HostParams) {
    let model = MultiTaskModel::new(gpu(), spec.clone(), params).unwrap();
    let device_batch = DeviceBatch::new(gpu(), batch, &spec.encoder, true).unwrap();
    let pass = model.forward(&device_batch, mode, None).unwrap();
    let losses = model
        .backward(
            &pass,
            &device_batch,
            &batch.targets,
            &model.store.grads,
            mode,
        )
        .unwrap();
    let loss = gpu().read_f32_blocking(&[&losses.total]).unwrap()[0][0] as f64;
    (loss, model.store.download_grads().unwrap())
}

#[test]
fn generation_gradients_join_the_model_correctly() {
    check_gradients(Mode::Eval);
}

/// With dropout on, the masks are a function of (seed, step, site) only, so the loss is still
/// a function of the weights: the backward must drop exactly what the forward dropped, at
/// every site (embeddings, attention probabilities, the three residual branches, encoder
/// and decoder).
#[test]
fn generation_gradients_hold_with_dropout() {
    check_gradients(Mode::Train { seed: 11, step: 3 });
}

fn check_gradients(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("model.toml");
    std::fs::write(
        &config_path,
        format!(
            "[encoder]\nlayers = 1\nhidden = 8\nheads = 2\nintermediate = 16\nmax_positions = 16\n\
             tokenizer = \"{TOKENIZER}\"\nseed = 4\ndropout = 0.3\n\n\
             [[task]]\nname = \"sentiment\"\nkind = \"classification\"\nlabels = [\"neg\", \"pos\"]\n\n\
             [[task]]\nname = \"echo\"\nkind = \"generation\"\ngate = \"vector\"\n\
             decoder = {{ layers = 1, max_length = 6 }}\nlabel_smoothing = 0.1\n"
        ),
    )
    .unwrap();
    let config = ModelConfig::load(&config_path).unwrap();
    let model = init_from_config(&config, &config_path, None).unwrap();
    let tokenizer = TextTokenizer::from_bytes(&model.tokenizer_json, 16).unwrap();
    let batch_path = dir.path().join("batch.jsonl");
    std::fs::write(
        &batch_path,
        "{\"text\": \"the film was great\", \"labels\": {\"echo\": \"great fun\", \"sentiment\": \"pos\"}}\n\
         {\"text\": \"the plot was so very sad\", \"labels\": {\"echo\": \"sad\"}}\n\
         {\"text\": \"boring\", \"labels\": {\"sentiment\": \"neg\", \"echo\": \"it was boring\"}}\n",
    )
    .unwrap();
    let examples = read_examples(&batch_path, &model.spec.tasks, &tokenizer).unwrap();
    let batch = collate(&examples, &model.spec.tasks, tokenizer.pad_id());
    let (_, grads) = loss_and_grads(&model.spec, &model.params, &batch, mode);
    let mut checked = 0;
    for name in [
        "tasks.echo.decoder.layer.0.crossattention.self.value.weight",
        "tasks.echo.decoder.layer.0.crossattention.self.query.weight",
        "tasks.echo.decoder.layer.0.attention.self.key.weight",
        "tasks.echo.decoder.layer.0.attention.self.value.weight",
        "encoder.layer.0.attention.self.value.weight",
        "tasks.echo.decoder.layer.0.attention.output.dense.weight",
        "tasks.echo.decoder.layer.0.crossattention.output.dense.weight",
        "tasks.echo.decoder.layer.0.output.dense.weight",
        "tasks.echo.decoder.embeddings.position_embeddings.weight",
        "tasks.echo.gate.weight",
        "embeddings.word_embeddings.weight",
        "encoder.layer.0.output.dense.weight",
        "tasks.sentiment.head.0.weight",
    ] {
        let g = &grads[name].data;
        // The element with the largest gradient (a well-conditioned difference).
        let at = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap();
        // With dropout (0.3 here) the loss curves faster in the embeddings (a dropped
        // position's gradient is scaled by 1/0.7 through the LayerNorm): a smaller step.
        let h = if mode == Mode::Eval { 1e-2f32 } else { 3e-3 };
        let moved = |delta: f32| {
            let mut params = model.params.clone();
            params.get_mut(name).unwrap().data[at] += delta;
            loss_and_grads(&model.spec, &params, &batch, mode).0
        };
        let numeric = (moved(h) - moved(-h)) / (2.0 * h as f64);
        let analytic = g[at] as f64;
        assert!(
            (analytic - numeric).abs() <= 2e-4 + 2e-2 * numeric.abs(),
            "{mode:?} {name}[{at}]: analytic {analytic:e}, numeric {numeric:e}"
        );
        checked += 1;
    }
    assert_eq!(checked, 13);
}
