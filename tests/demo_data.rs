//! The demo's real data (written by scripts/demo_data.py, which `.ci/run` runs) read through
//! demo/demo.toml exactly as `taskgate train` reads it: every file of every task parses and
//! tokenizes, label sets are inferred as expected, and no text is in two splits. Skipped, with
//! the reason printed, when the data or the MiniLM tokenizer has not been fetched.

use std::collections::HashSet;
use std::path::Path;

use taskgate::config::{DataSource, TaskConfig};
use taskgate::data::splits::{Split, load_split};
use taskgate::tasks::TaskSpec;
use taskgate::tokenize::TextTokenizer;
use taskgate::train::run::resolve_fresh;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_demo_data_loads_with_the_demo_config() {
    let root = Path::new(ROOT);
    let tokenizer_path = root.join("models/all-MiniLM-L6-v2/tokenizer.json");
    if !root.join("data/demo/pos/train.txt").exists() || !tokenizer_path.exists() {
        eprintln!(
            "skipped: run `python3 scripts/fetch_assets.py minilm && python3 scripts/demo_data.py` first"
        );
        return;
    }
    let config = resolve_fresh(&root.join("demo/demo.toml"), None).unwrap();
    let full = resolve_fresh(&root.join("demo/demo-full.toml"), None).unwrap();
    let four = resolve_fresh(&root.join("demo/four-tasks.toml"), None).unwrap();
    assert_eq!(full.tasks.len(), 5, "the GPU setting reads the same data");
    // The generation configs of the README: both generation tasks, and inflect alone.
    for (file, tasks) in [
        ("demo/generation.toml", &["define", "inflect"][..]),
        ("demo/inflect-baseline.toml", &["inflect"][..]),
    ] {
        let c = resolve_fresh(&root.join(file), None).unwrap();
        let got: Vec<&str> = c.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(got, tasks, "{file}");
        let specs = TaskSpec::all_from(&c).unwrap();
        assert!(
            specs.iter().all(|t| t.kind.generates_text()),
            "{file}: generation tasks only"
        );
    }
    // The transfer experiment: three tasks, then the fourth alone, as the demo defines it.
    let source = resolve_fresh(&root.join("demo/transfer-source.toml"), None).unwrap();
    let target = resolve_fresh(&root.join("demo/transfer-target.toml"), None).unwrap();
    let task_names = |c: &taskgate::config::ModelConfig| -> Vec<String> {
        c.tasks.iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(task_names(&source), ["intensity", "pos", "hedge"]);
    assert_eq!(task_names(&target), ["sentiment"]);
    assert_eq!(target.tasks[0].labels, config.tasks[0].labels);
    assert_eq!(source.encoder.layers, target.encoder.layers);
    assert_eq!(full.encoder.layers, Some(6));
    let names = |c: &taskgate::config::ModelConfig| -> Vec<String> {
        c.tasks.iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(
        names(&four),
        names(&config)[..4],
        "the demo without its generation task"
    );
    let tokenizer = TextTokenizer::from_file(&tokenizer_path, 64).unwrap();
    let names: Vec<&str> = config.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sentiment", "intensity", "pos", "hedge", "inflect"]);
    let labels = |i: usize| config.tasks[i].labels.clone().unwrap_or_default();
    assert_eq!(labels(0), ["negative", "positive"]);
    assert_eq!(labels(3), ["uncertain", "certain"]);
    let tags = labels(2);
    assert!(
        tags.len() > 30
            && ["NN", "DT", "VBZ", "."]
                .iter()
                .all(|t| tags.iter().any(|x| x == t)),
        "{tags:?}"
    );
    let specs = TaskSpec::all_from(&config).unwrap();
    let sources: Vec<DataSource> = config.tasks.iter().map(TaskConfig::source).collect();
    for (i, task) in config.tasks.iter().enumerate() {
        let mut seen: HashSet<String> = HashSet::new();
        let mut counts = Vec::new();
        for split in [Split::Train, Split::Dev, Split::Test] {
            let examples = load_split(&specs, &sources, i, split, &tokenizer)
                .unwrap()
                .expect("every split has a file");
            counts.push(examples.len());
            for e in &examples {
                assert!(e.labels[i].is_some());
                assert!(
                    seen.insert(e.text.clone()),
                    "task {}: '{}' is in two splits",
                    task.name,
                    e.text
                );
            }
        }
        let total: usize = counts.iter().sum();
        assert!(
            counts[1] * 12 > total && counts[2] * 12 > total,
            "task {}: 80/10/10 split, got {counts:?}",
            task.name
        );
        eprintln!("{}: train/dev/test = {counts:?}", task.name);
    }
}
