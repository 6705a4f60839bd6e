//! The layer order `src/lib.rs` states, checked on the source: every `crate::<module>` a
//! module names (outside comments and its `#[cfg(test)] mod tests`) is a module of a lower
//! layer; modules of one layer never import each other.

use std::collections::BTreeMap;
use std::path::Path;

/// Each top-level module of `src/` and its layer, bottom first (as `src/lib.rs` says).
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("files", 0),
    ("fault", 0),
    ("dist", 0),
    ("shaders", 0),
    ("tokenize", 0),
    ("config", 1),
    ("gpu", 2),
    ("ops", 3),
    ("reference", 3),
    ("metrics", 4),
    ("tasks", 5),
    ("data", 6),
    ("nn", 7),
    ("model", 8),
    ("eval", 9),
    ("train", 10),
    ("session", 11),
    ("bench", 11),
    ("tune", 11),
    ("cli", 12),
];

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .unwrap_or_else(|| panic!("src/{module}: add the module to LAYERS (and to src/lib.rs)"))
        .1
}

/// The modules `text` names as `crate::<module>`, comments and unit tests left out.
fn named_modules(text: &str) -> Vec<String> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    found
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut upward: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for path in files {
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel.iter().next().unwrap().to_str().unwrap();
        let module = module.trim_end_matches(".rs");
        if ["lib", "main"].contains(&module) || rel.ends_with("tests.rs") {
            continue;
        }
        let own = layer(module);
        let text = std::fs::read_to_string(&path).unwrap();
        for target in named_modules(&text) {
            checked += 1;
            if target == module {
                continue;
            }
            let theirs = layer(&target);
            if theirs >= own {
                upward
                    .entry(rel.display().to_string())
                    .or_default()
                    .push(format!("{target} (layer {theirs} from layer {own})"));
            }
        }
    }
    assert!(checked > 100, "the scan found the imports ({checked})");
    assert!(
        upward.is_empty(),
        "imports that run upward or sideways: {upward:#?}"
    );
}

#[test]
fn the_scan_sees_an_upward_import() {
    let text = "use crate::model::X;\n// use crate::cli::Y;\n#[cfg(test)]\nmod tests {\n use crate::train::Z;\n}\n";
    assert_eq!(named_modules(text), ["model"]);
}
