//! Model sizes, checked before anything is allocated: every parameter's element count (with
//! overflow checks) and the total against the host memory available. A size that cannot fit
//! is an error naming the configuration setting that makes it, never an allocation failure
//! that aborts the process.

use anyhow::{Result, bail};

use super::spec::{EncoderDims, ModelSpec, ParamSpec};

/// Bytes of memory the operating system can give this process now: on Linux the machine's
/// `MemAvailable`, or less where the process's control group (a container) allows less;
/// `None` where unknown.
pub fn available_host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    let machine = kib.saturating_mul(1024);
    Some(cgroup_room().map_or(machine, |room| room.min(machine)))
}

/// The room left under this process's cgroup memory limit (v2, else v1), if it has one.
fn cgroup_room() -> Option<u64> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    // v2: "0::/some/group" in /proc/self/cgroup; the limit is "max" when there is none.
    let own = std::fs::read_to_string("/proc/self/cgroup").ok();
    let unified = own
        .as_deref()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::")))
        .unwrap_or("/");
    let dir = format!("/sys/fs/cgroup{}", unified.trim_end_matches('/'));
    if let (Some(limit), Some(used)) = (
        read(&format!("{dir}/memory.max")),
        read(&format!("{dir}/memory.current")),
    ) {
        return Some(limit.saturating_sub(used));
    }
    // v1: "N:memory:/some/group"; inside a container the group's files may sit at the root.
    let group = own
        .as_deref()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.split_once(":memory:").map(|(_, g)| g))
        })
        .unwrap_or("/");
    for dir in [
        format!("/sys/fs/cgroup/memory{}", group.trim_end_matches('/')),
        "/sys/fs/cgroup/memory".to_string(),
    ] {
        if let (Some(limit), Some(used)) = (
            read(&format!("{dir}/memory.limit_in_bytes")),
            read(&format!("{dir}/memory.usage_in_bytes")),
        ) {
            return Some(limit.saturating_sub(used));
        }
    }
    None
}

/// The configuration setting that decides the size of parameter `name`.
pub fn setting_of(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("tasks.") {
        let task = rest.split('.').next().unwrap_or(rest);
        return if rest.contains(".gate.") {
            format!("task '{task}' gate (a vector gate is hidden x hidden)")
        } else {
            format!("task '{task}' head (its hidden sizes, labels or outputs)")
        };
    }
    let setting = match name {
        "embeddings.word_embeddings.weight" => "vocab_size and hidden",
        "embeddings.position_embeddings.weight" => "max_positions and hidden",
        "embeddings.token_type_embeddings.weight" => "type_vocab_size and hidden",
        n if n.contains(".intermediate.")
            || (n.contains(".output.dense.") && !n.contains(".attention.")) =>
        {
            "intermediate, hidden and layers"
        }
        n if n.starts_with("encoder.layer.") => "hidden and layers",
        _ => "hidden",
    };
    format!("[encoder] {setting}")
}

/// Elements of `spec`, or `None` when the count overflows.
fn elements(spec: &ParamSpec) -> Option<u64> {
    spec.shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Above this many bytes a model is refused even where the free memory is unknown.
const ABSURD_BYTES: u64 = 1 << 44;

/// Checks that the parameters of `spec` can be held `copies` times in host memory
/// (`available` bytes; `None`: unknown); returns the parameter count. Counted from one
/// encoder layer times `layers`, so that even an absurd layer count is refused before the
/// parameter list is built. `source` names the configuration in errors.
pub fn check_model_memory(
    spec: &ModelSpec,
    copies: u64,
    available: Option<u64>,
    source: &str,
) -> Result<u64> {
    let one_layer = ModelSpec {
        encoder: EncoderDims {
            layers: 1,
            ..spec.encoder.clone()
        },
        tasks: spec.tasks.clone(),
    };
    let layers = spec.encoder.layers as u64;
    let specs = one_layer.param_specs();
    let items = specs.iter().map(|p| {
        let times = if p.name.starts_with("encoder.layer.0.") {
            layers
        } else {
            1
        };
        (p, times)
    });
    check(items, copies, available, source)
}

/// Checks that `specs` can be held `copies` times in host memory (see
/// [`check_model_memory`]).
pub fn check_params_memory(
    specs: &[ParamSpec],
    copies: u64,
    available: Option<u64>,
    source: &str,
) -> Result<u64> {
    check(specs.iter().map(|p| (p, 1)), copies, available, source)
}

/// The check itself, over parameters that occur `times` times each.
fn check<'a>(
    items: impl Iterator<Item = (&'a ParamSpec, u64)>,
    copies: u64,
    available: Option<u64>,
    source: &str,
) -> Result<u64> {
    let mut total = 0u64;
    // Per setting: its elements, and its largest tensor (with how often it repeats).
    let mut by_setting: Vec<(String, u64, &ParamSpec, u64)> = Vec::new();
    for (spec, times) in items {
        let each = elements(spec).filter(|n| n.checked_mul(4 * copies).is_some());
        let Some(n) = each.and_then(|n| n.checked_mul(times)) else {
            bail!(
                "{source}: {} would be {:?}{}, too large for any machine; it is set by {}: \
                 make that smaller",
                spec.name,
                spec.shape,
                if times > 1 {
                    format!(" in each of {times} layers")
                } else {
                    String::new()
                },
                setting_of(&spec.name)
            );
        };
        total = total.saturating_add(n);
        let setting = setting_of(&spec.name);
        match by_setting.iter_mut().find(|(s, ..)| *s == setting) {
            Some((_, sum, big, big_times)) => {
                *sum = sum.saturating_add(n);
                if n / times > big.numel() as u64 {
                    (*big, *big_times) = (spec, times);
                }
            }
            None => by_setting.push((setting, n, spec, times)),
        }
    }
    let bytes = total.saturating_mul(4);
    let needed = bytes.saturating_mul(copies);
    let limit = available.unwrap_or(ABSURD_BYTES);
    if needed > limit {
        let Some((setting, share, big, times)) = by_setting.iter().max_by_key(|(_, n, ..)| *n)
        else {
            bail!("{source}: the model is too large for this machine");
        };
        let example = if *times > 1 {
            format!(
                " (such as {} {:?}, in each of {times} layers)",
                big.name.replace("encoder.layer.0.", "encoder.layer.N."),
                big.shape
            )
        } else {
            format!(" (such as {} {:?})", big.name, big.shape)
        };
        let have = match available {
            Some(a) => format!("the {} of memory available on this machine", gib(a)),
            None => "what any machine has".to_string(),
        };
        bail!(
            "{source}: the model would have {total} parameters ({} as f32, held about \
             {copies} times while it is built), more than {have}; {:.0}% of them come from \
             {setting}{example}: make that smaller",
            gib(bytes),
            100.0 * *share as f64 / total.max(1) as f64
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{Init, Owner};

    fn param(name: &str, shape: &[usize]) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            owner: Owner::Encoder,
            decay: true,
            packed: false,
            init: Init::Zeros,
        }
    }

    #[test]
    fn sizes_name_the_setting_that_makes_them() {
        let small = [
            param("embeddings.word_embeddings.weight", &[100, 8]),
            param("tasks.x.head.0.weight", &[16, 8]),
        ];
        assert_eq!(
            check_params_memory(&small, 2, Some(1 << 30), "c.toml").unwrap(),
            928
        );
        let huge_head = [
            param("embeddings.word_embeddings.weight", &[100, 8]),
            param("tasks.x.head.0.weight", &[100_000_000, 384]),
        ];
        let err = check_params_memory(&huge_head, 2, Some(16 << 30), "c.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("task 'x' head") && err.contains("16.0 GiB") && err.starts_with("c.toml"),
            "{err}"
        );
        let positions = [param(
            "embeddings.position_embeddings.weight",
            &[1_000_000_000, 384],
        )];
        let err = check_params_memory(&positions, 2, Some(64 << 30), "c.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_positions"), "{err}");
        let overflow = [param(
            "encoder.layer.0.intermediate.dense.weight",
            &[usize::MAX, 2],
        )];
        let err = check_params_memory(&overflow, 2, None, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[encoder] intermediate"), "{err}");
        assert_eq!(
            setting_of("encoder.layer.3.attention.output.dense.weight"),
            "[encoder] hidden and layers"
        );
    }

    fn spec(layers: usize) -> ModelSpec {
        let config: crate::config::ModelConfig = toml::from_str(&format!(
            "[encoder]\nlayers = {layers}\nhidden = 8\nheads = 2\nintermediate = 12\n\
             max_positions = 16\nvocab_size = 50\n\n[[task]]\nname = \"t\"\n\
             kind = \"classification\"\nlabels = [\"a\", \"b\"]\ngate = \"vector\"\n\
             head = {{ hidden = [5] }}\n"
        ))
        .unwrap();
        ModelSpec::from_config(&config).unwrap()
    }

    #[test]
    fn counting_one_layer_times_layers_is_exact() {
        for layers in [1, 2, 7] {
            let s = spec(layers);
            let listed: u64 = s.param_specs().iter().map(|p| p.numel() as u64).sum();
            assert_eq!(check_model_memory(&s, 2, None, "c").unwrap(), listed);
        }
        // Ten million layers are refused without listing them.
        let err = check_model_memory(&spec(10_000_000), 2, Some(1 << 34), "c")
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers"), "{err}");
    }
}
