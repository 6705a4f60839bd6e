//! Parameters on the host: fresh initialization, safetensors reading (f32, f16, bf16, f64)
//! and atomic writing, and strict checks of names, shapes and dtypes against a spec.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use safetensors::{Dtype, SafeTensors};

use super::spec::{Init, ParamSpec};
use crate::files::write_atomic;

/// A named f32 tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Parameters by name.
pub type HostParams = BTreeMap<String, HostTensor>;

fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the seed: each parameter's draw is independent of
    // which other parameters exist.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fresh values for `spec`, reproducible from `seed` and the parameter's name; an error
/// (not an abort) when the memory cannot be had.
pub fn init_param(spec: &ParamSpec, seed: u64) -> Result<HostTensor> {
    let n = spec.numel();
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(n).map_err(|_| {
        anyhow!(
            "not enough memory for {} {:?} ({} MiB); it is set by {}: make that smaller",
            spec.name,
            spec.shape,
            (n as u64).saturating_mul(4) >> 20,
            super::size::setting_of(&spec.name)
        )
    })?;
    match spec.init {
        Init::Zeros => data.resize(n, 0.0),
        Init::Ones => data.resize(n, 1.0),
        Init::Normal(std) => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(name_seed(seed, &spec.name));
            let normal = Normal::new(0.0f32, std).expect("finite std");
            data.extend((0..n).map(|_| normal.sample(&mut rng)));
        }
    }
    Ok(HostTensor {
        shape: spec.shape.clone(),
        data,
    })
}

/// A tensor read from a safetensors file: f32 values, or a note that it is not floating point.
pub enum FileTensor {
    Float(HostTensor, Dtype),
    Other(Vec<usize>, Dtype),
}

/// Reads every tensor of a safetensors file, converting floating-point ones to f32.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, FileTensor>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_safetensors(&bytes, &path.display().to_string())
}

/// Every tensor of safetensors `bytes`, floating-point ones as f32; `source` names them in
/// errors.
pub fn parse_safetensors(bytes: &[u8], source: &str) -> Result<BTreeMap<String, FileTensor>> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{source} is not a valid safetensors file: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let raw = view.data();
        let data: Option<Vec<f32>> = match view.dtype() {
            Dtype::F32 => Some(bytemuck::pod_collect_to_vec(raw)),
            Dtype::F16 => Some(
                raw.chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => Some(
                raw.chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::F64 => Some(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
            ),
            _ => None,
        };
        let entry = match data {
            Some(data) => FileTensor::Float(HostTensor { shape, data }, view.dtype()),
            None => FileTensor::Other(shape, view.dtype()),
        };
        out.insert(name, entry);
    }
    Ok(out)
}

/// A tensor to write: f32 values or i32 values.
pub enum OutTensor<'a> {
    F32(&'a [usize], &'a [f32]),
    I32(&'a [usize], &'a [i32]),
}

/// Writes tensors to `path` atomically (a temporary file in the same directory, then a
/// rename), so a crash never leaves a half-written file.
pub fn write_safetensors(path: &Path, tensors: &[(String, OutTensor<'_>)]) -> Result<()> {
    let bytes =
        serialize_safetensors(tensors).with_context(|| format!("writing {}", path.display()))?;
    write_atomic(path, &bytes)
}

/// The bytes of a safetensors file holding `tensors`.
pub fn serialize_safetensors(tensors: &[(String, OutTensor<'_>)]) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, shape, bytes): (Dtype, &[usize], &[u8]) = match t {
                OutTensor::F32(s, d) => (Dtype::F32, s, bytemuck::cast_slice(d)),
                OutTensor::I32(s, d) => (Dtype::I32, s, bytemuck::cast_slice(d)),
            };
            let view = safetensors::tensor::TensorView::new(dtype, shape.to_vec(), bytes)
                .map_err(|e| anyhow!("tensor {name}: {e}"))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| anyhow!("cannot serialize tensors: {e}"))
}

/// Checks `params` against `specs` exactly: every name present with its shape, nothing
/// else. The error lists everything missing, extra and mismatched.
pub fn check_params(params: &HostParams, specs: &[ParamSpec], source: &str) -> Result<()> {
    let mut problems = Vec::new();
    for spec in specs {
        match params.get(&spec.name) {
            None => problems.push(format!("missing {} {:?}", spec.name, spec.shape)),
            Some(t) if t.shape != spec.shape => problems.push(format!(
                "shape of {}: expected {:?}, found {:?}",
                spec.name, spec.shape, t.shape
            )),
            Some(t) if t.data.len() != spec.numel() => problems.push(format!(
                "{}: {} values for shape {:?}",
                spec.name,
                t.data.len(),
                spec.shape
            )),
            _ => {}
        }
    }
    for name in params.keys() {
        if !specs.iter().any(|s| &s.name == name) {
            problems.push(format!("extra {name}"));
        }
    }
    if !problems.is_empty() {
        let count = |prefix: &str| problems.iter().filter(|p| p.starts_with(prefix)).count();
        let (missing, extra) = (count("missing"), count("extra"));
        let reshaped = count("shape")
            + problems
                .iter()
                .filter(|p| p.contains(" values for shape"))
                .count();
        return Err(crate::error::listed(problems, 3, |first| {
            format!(
                "{source} does not match the model's configuration ({missing} missing, {extra} \
                 extra, {reshaped} of another shape): {first}"
            )
        }));
    }
    Ok(())
}

/// What loading does with NaN or Inf parameter values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinite {
    /// An error naming the tensors (the default: such weights predict nonsense).
    #[default]
    Reject,
    /// Load them anyway (`--allow-non-finite`); [`non_finite`] tells the caller where.
    Allow,
}

/// The tensors of `params` that hold NaN or Inf: (name, how many values, the first index).
pub fn non_finite(params: &HostParams) -> Vec<(String, usize, usize)> {
    params
        .iter()
        .filter_map(|(name, t)| {
            let first = t.data.iter().position(|v| !v.is_finite())?;
            let count = t.data[first..].iter().filter(|v| !v.is_finite()).count();
            Some((name.clone(), count, first))
        })
        .collect()
}

/// One line per tensor [`non_finite`] found.
pub fn describe_non_finite(found: &[(String, usize, usize)]) -> Vec<String> {
    found
        .iter()
        .map(|(name, count, first)| format!("{name} ({count} values, the first at index {first})"))
        .collect()
}

/// Fails when a tensor of `params` holds NaN or Inf, naming it; `source` names the file and
/// `fix` says what to do.
pub fn check_finite(params: &HostParams, source: &str, fix: &str) -> Result<()> {
    let found = non_finite(params);
    if found.is_empty() {
        return Ok(());
    }
    Err(crate::error::listed(
        describe_non_finite(&found),
        2,
        |first| {
            format!(
                "{source}: {} tensor(s) hold NaN or Inf values: {first}; {fix}",
                found.len()
            )
        },
    ))
}

/// Parses safetensors `bytes` that must hold exactly the parameters in `specs` as f32;
/// `source` names them in errors.
pub fn parse_params(bytes: &[u8], specs: &[ParamSpec], source: &str) -> Result<HostParams> {
    params_from_tensors(parse_safetensors(bytes, source)?, specs, source)
}

/// Tensors read from a file that must be exactly the parameters in `specs`, as f32; `source`
/// names them in errors.
pub fn params_from_tensors(
    tensors: BTreeMap<String, FileTensor>,
    specs: &[ParamSpec],
    source: &str,
) -> Result<HostParams> {
    let mut params = HostParams::new();
    let mut problems = Vec::new();
    for (name, t) in tensors {
        match t {
            FileTensor::Float(t, Dtype::F32) => {
                params.insert(name, t);
            }
            FileTensor::Float(_, dtype) | FileTensor::Other(_, dtype) => {
                problems.push(format!("dtype of {name}: expected F32, found {dtype:?}"))
            }
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(crate::error::listed(problems, 3, |first| {
            format!("{source}: {n} tensor(s) are not F32: {first}")
        }));
    }
    check_params(&params, specs, source)?;
    Ok(params)
}

fn param_tensors<'a>(params: &'a HostParams, specs: &[ParamSpec]) -> Vec<(String, OutTensor<'a>)> {
    specs
        .iter()
        .map(|s| {
            let t = &params[&s.name];
            (s.name.clone(), OutTensor::F32(&t.shape, &t.data))
        })
        .collect()
}

/// The bytes of a `model.safetensors` holding `params` in spec order.
pub fn serialize_params(params: &HostParams, specs: &[ParamSpec]) -> Result<Vec<u8>> {
    serialize_safetensors(&param_tensors(params, specs))
}
