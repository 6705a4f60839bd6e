//! The `taskgate` binary: `info` lists the adapters and the chosen one; bad flags are errors
//! with a message, not panics. With TASKGATE_EXPECT_ADAPTER set (CI sets `llvmpipe`), the
//! listing must contain that adapter.

use std::process::Command;

fn taskgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_taskgate"))
        .args(args)
        .env_remove("TASKGATE_BACKEND")
        .env_remove("TASKGATE_ADAPTER")
        .output()
        .expect("run taskgate")
}

#[test]
fn info_json_lists_adapters_limits_and_features() {
    let out = taskgate(&["info", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let adapters = report["adapters"].as_array().expect("adapters");
    assert!(!adapters.is_empty());
    let chosen = &report["chosen"];
    let name = chosen["adapter"]["name"].as_str().unwrap();
    assert!(
        adapters.iter().any(|a| a["name"] == name),
        "the chosen adapter is listed"
    );
    assert!(
        chosen["limits"]["max_storage_buffer_binding_size"]
            .as_u64()
            .unwrap()
            >= 1 << 20
    );
    assert!(chosen["features"].is_array() && chosen["missing_features"].is_array());
    if let Ok(expected) = std::env::var("TASKGATE_EXPECT_ADAPTER") {
        assert!(
            adapters
                .iter()
                .any(|a| a["name"].as_str().unwrap().contains(&expected)),
            "expected an adapter named like {expected}: {adapters:?}"
        );
    }
    let text = taskgate(&["info"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("chosen:") && text.contains(name) && text.contains("max_buffer_size"),
        "{text}"
    );
}

#[test]
fn adapter_choice_can_be_forced_and_bad_choices_are_errors() {
    let out = taskgate(&["info", "--json", "--backend", "vulkan"]);
    if out.status.success() {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["chosen"]["adapter"]["backend"], "vulkan");
    }
    let out = taskgate(&["info", "--backend", "cuda"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown backend 'cuda'"), "{err}");
    let out = taskgate(&["info", "--adapter", "no-such-adapter-anywhere"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no adapter matches") && err.contains("available adapters"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_taskgate"))
        .args(["info", "--json"])
        .env("TASKGATE_ADAPTER", "no-such-adapter-anywhere")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the environment variable forces the choice too"
    );
}
