//! Transfer and freezing end to end: `--init-from` a run carries the encoder and the
//! unchanged tasks bit for bit (new tasks start as seeded, dropped ones are left out), and a
//! run started that way resumes exactly; `freeze` leaves the frozen tensors untouched and
//! gives them no optimizer state; bad settings are one-line errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Every tensor of a safetensors file: shape and raw bytes.
pub fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

/// The three-task config of `write_data` with a 2-layer encoder (`steps`, `eval_every`).
pub fn source_config(dir: &Path, steps: u64, eval_every: u64) -> PathBuf {
    let config = write_data(dir, steps, eval_every);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&tiny_encoder(1), &tiny_encoder(2))).unwrap();
    config
}

/// A config for the transfer: `sentiment` and `tags` as in the source, `score` dropped, a new
/// classification task `topic` (the subject of each sentence); `train_extra` is appended to
/// its `[train]` section, `sentiment_extra` to the sentiment task.
pub fn target_config(dir: &Path, name: &str, sentiment_extra: &str, train_extra: &str) -> PathBuf {
    let mut topic = String::from("text,label\n");
    for (i, subject) in SUBJECTS.iter().enumerate() {
        for j in 0..5 {
            topic.push_str(&format!(
                "the {subject} was {},{subject}\n",
                POSITIVE[(i + j) % 5]
            ));
        }
    }
    std::fs::write(dir.join("topic.csv"), &topic).unwrap();
    let config = dir.join(name);
    let encoder = tiny_encoder(2);
    std::fs::write(
        &config,
        format!(
            r#"
{encoder}

[[task]]
name = "sentiment"
kind = "classification"
train = "train.csv"
dev = "dev.csv"
{sentiment_extra}

[[task]]
name = "topic"
kind = "classification"
train = "topic.csv"
dev = "topic.csv"

[[task]]
name = "tags"
kind = "token_classification"
train = "train.conll"
dev = "dev.conll"
word_split = "punctuation"

[train]
steps = 12
batch_size = 8
lr = 3e-3
warmup = 0.1
eval_every = 4
log_every = 2
sampler = "round_robin"
seed = 7
{train_extra}
"#
        ),
    )
    .unwrap();
    config
}

/// Three lines to `dump`, one with a text pair.
pub fn write_batch(dir: &Path) -> PathBuf {
    let batch = dir.join("batch.jsonl");
    std::fs::write(
        &batch,
        "{\"text\": \"the movie was great\"}\n\
         {\"text\": \"the plot was boring\", \"text_pair\": \"it was very sad\"}\n\
         {\"text\": \"fun\"}\n",
    )
    .unwrap();
    batch
}

#[test]
fn init_from_a_run_carries_the_encoder_and_unchanged_tasks_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let source = source_config(tmp.path(), 8, 4);
    let src = tmp.path().join("src");
    ok(&taskgate(&["train", p(&source), "--out", p(&src)], &[]));
    let config = target_config(tmp.path(), "target.toml", "", "");

    // The model a run of the target config starts from, with and without the source.
    let (carried, fresh) = (tmp.path().join("carried"), tmp.path().join("fresh"));
    let notes = ok(&taskgate(
        &[
            "init",
            p(&config),
            "--init-from",
            p(&src),
            "--out",
            p(&carried),
        ],
        &[],
    ));
    assert!(
        notes.contains("tasks taken: sentiment, tags; started fresh: topic; left out: score"),
        "{notes}"
    );
    ok(&taskgate(&["init", p(&config), "--out", p(&fresh)], &[]));
    let (before, after, seeded) = (
        tensors(&src.join("best/model.safetensors")),
        tensors(&carried.join("model.safetensors")),
        tensors(&fresh.join("model.safetensors")),
    );
    for (name, value) in &after {
        if name.starts_with("tasks.topic.") {
            assert_eq!(
                Some(value),
                seeded.get(name),
                "{name}: a new task starts as seeded"
            );
        } else {
            assert_eq!(Some(value), before.get(name), "{name}: carried bit for bit");
        }
    }
    assert!(after.keys().any(|n| n.starts_with("tasks.topic.")));
    assert!(
        !after.keys().any(|n| n.starts_with("tasks.score.")),
        "score is left out"
    );

    // Same encoder, same hidden states: the dumps agree bit for bit.
    let batch = write_batch(tmp.path());
    let dump = |model: &Path, out: &str| {
        let out = tmp.path().join(out);
        ok(&taskgate(
            &[
                "dump",
                "--model",
                p(model),
                "--batch",
                p(&batch),
                "--out",
                p(&out),
            ],
            &[],
        ));
        tensors(&out)
    };
    let (a, b) = (
        dump(&src.join("best"), "a.safetensors"),
        dump(&carried, "b.safetensors"),
    );
    assert_eq!(a["hidden"], b["hidden"]);
    assert_eq!(a["logits.sentiment"], b["logits.sentiment"]);

    // A run started from the source resumes to the same bytes as an uninterrupted one.
    let whole = tmp.path().join("whole");
    ok(&taskgate(
        &[
            "train",
            p(&config),
            "--init-from",
            p(&src),
            "--out",
            p(&whole),
        ],
        &[],
    ));
    let run_toml = std::fs::read_to_string(whole.join("run.toml")).unwrap();
    assert!(
        run_toml.contains("init_from"),
        "run.toml records the source: {run_toml}"
    );
    let killed = tmp.path().join("killed");
    let out = taskgate(
        &[
            "train",
            p(&config),
            "--init-from",
            p(&src),
            "--out",
            p(&killed),
        ],
        &[("TASKGATE_FAULT", "run:step@6")],
    );
    assert!(!out.status.success(), "the hook aborts the process");
    ok(&taskgate(&["train", "--resume", p(&killed)], &[]));
    assert_same_run(&whole, &killed, "init_from, killed at step 6");
}

#[test]
fn frozen_tensors_stay_bit_identical_and_get_no_optimizer_state() {
    let tmp = tempfile::tempdir().unwrap();
    source_config(tmp.path(), 1, 0); // the data files
    let freeze = "freeze = [\"embeddings\", \"encoder.layer.0\", \"tasks.tags\"]\n\
                  layer_lr_decay = 0.8";
    let frozen_config = target_config(tmp.path(), "frozen.toml", "", freeze);
    let full_config = target_config(tmp.path(), "full.toml", "", "");
    let initial = tmp.path().join("initial");
    ok(&taskgate(
        &["init", p(&frozen_config), "--out", p(&initial)],
        &[],
    ));
    let (frozen, full) = (tmp.path().join("frozen"), tmp.path().join("full"));
    let out = taskgate(&["train", p(&frozen_config), "--out", p(&frozen)], &[]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the backward stops above encoder.layer.0"),
        "{err}"
    );
    ok(&taskgate(
        &["train", p(&full_config), "--out", p(&full)],
        &[],
    ));

    let is_frozen = |name: &str| {
        name.starts_with("embeddings.")
            || name.starts_with("encoder.layer.0.")
            || name.starts_with("tasks.tags.")
    };
    let (start, end) = (
        tensors(&initial.join("model.safetensors")),
        tensors(&frozen.join("last/model.safetensors")),
    );
    let mut frozen_elements = 0;
    for (name, value) in &start {
        if is_frozen(name) {
            assert_eq!(Some(value), end.get(name), "{name} is frozen");
            frozen_elements += value.0.iter().product::<usize>();
        } else if !name.ends_with("attention.self.key.bias") {
            // (the key bias gets no gradient: softmax ignores a constant per row)
            assert_ne!(Some(value), end.get(name), "{name} trains");
        }
    }
    let moments = |run: &Path| -> usize {
        tensors(&run.join("last/optimizer.safetensors"))
            .iter()
            .filter(|(name, _)| name.starts_with("m."))
            .map(|(_, (shape, _))| shape.iter().product::<usize>())
            .sum()
    };
    assert_eq!(
        moments(&frozen),
        moments(&full) - frozen_elements,
        "the optimizer keeps state for the trained parameters only"
    );

    // A frozen run resumes exactly.
    let killed = tmp.path().join("killed");
    let out = taskgate(
        &["train", p(&frozen_config), "--out", p(&killed)],
        &[("TASKGATE_FAULT", "run:step@6")],
    );
    assert!(!out.status.success());
    ok(&taskgate(&["train", "--resume", p(&killed)], &[]));
    assert_same_run(&frozen, &killed, "frozen, killed at step 6");
}

/// `train` of `config` (with `args`) exits 2 with one error line holding every `parts`, and
/// leaves no run directory.
fn refused(tmp: &Path, config: &Path, args: &[&str], parts: &[&str]) {
    let run = tmp.join("refused-run");
    let mut all = vec!["train", p(config), "--out", p(&run)];
    all.extend_from_slice(args);
    fails_with(&all, &[], parts);
    assert!(!run.exists(), "no run directory is left");
}

#[test]
fn bad_transfer_settings_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let source = source_config(tmp.path(), 4, 0);
    let src = tmp.path().join("src");
    ok(&taskgate(&["train", p(&source), "--out", p(&src)], &[]));
    let config = target_config(tmp.path(), "target.toml", "", "");
    let t = tmp.path();

    let missing = t.join("no-such-dir");
    refused(
        t,
        &config,
        &["--init-from", p(&missing)],
        &["--init-from", "no-such-dir"],
    );
    let not_a_model = t.join("not-a-model");
    std::fs::create_dir(&not_a_model).unwrap();
    refused(
        t,
        &config,
        &["--init-from", p(&not_a_model)],
        &[
            "not-a-model",
            "neither a run directory",
            "nor a model directory",
        ],
    );

    let with = |name: &str, sentiment: &str, train: &str| target_config(t, name, sentiment, train);
    refused(
        t,
        &with("a.toml", "", "freeze = [\"encoder.layer.7\"]"),
        &[],
        &[
            "[train] freeze[0] = \"encoder.layer.7\" names no parameter",
            "0 to 1",
        ],
    );
    for decay in ["0", "1.5", "-0.5"] {
        refused(
            t,
            &with("b.toml", "", &format!("layer_lr_decay = {decay}")),
            &[],
            &["[train] layer_lr_decay must be in (0, 1]"],
        );
    }
    // Other labels: the head's shape changed.
    let relabelled = with("c.toml", "labels = [\"neg\", \"pos\", \"meh\"]", "");
    refused(
        t,
        &relabelled,
        &["--init-from", p(&src)],
        &[
            "task 'sentiment' differs from the one in",
            "tasks.sentiment.head.0.bias is [2] there and [3] here",
            "[train] reinit",
        ],
    );
    // Labels in another order: the shapes agree, the meaning does not.
    let reordered = with("d.toml", "labels = [\"pos\", \"neg\"]", "");
    refused(
        t,
        &reordered,
        &["--init-from", p(&src)],
        &[
            "task 'sentiment' differs",
            "labels [\"neg\", \"pos\"] there, [\"pos\", \"neg\"] here",
        ],
    );
    let unknown = with("e.toml", "", "reinit = [\"nope\"]");
    refused(
        t,
        &unknown,
        &["--init-from", p(&src)],
        &["[train] reinit names \"nope\", which is not a task of this config"],
    );
    refused(
        t,
        &with("f.toml", "", "reinit = [\"sentiment\"]"),
        &[],
        &["[train] reinit", "init_from is not set"],
    );
    refused(
        t,
        &with(
            "g.toml",
            "",
            "freeze = [\"encoder\"]\nmixing = \"all_tasks\"\nweighting = \"pcgrad\"",
        ),
        &[],
        &["weighting = \"pcgrad\"", "freeze covers the whole encoder"],
    );

    // With reinit the relabelled task starts fresh and the run goes ahead.
    let fixed = with(
        "h.toml",
        "labels = [\"neg\", \"pos\", \"meh\"]",
        "reinit = [\"sentiment\"]",
    );
    let notes = ok(&taskgate(
        &[
            "init",
            p(&fixed),
            "--init-from",
            p(&src),
            "--out",
            p(&t.join("fixed")),
        ],
        &[],
    ));
    assert!(notes.contains("sentiment (reinit)"), "{notes}");
}
