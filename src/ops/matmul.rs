//! Launchers for the matmul kernels: `shaders/matmul.wgsl` (any layout),
//! `shaders/matmul_vec4.wgsl` (vec4 loads) and `shaders/matmul_subgroup.wgsl` (CPU adapters
//! with 8- or 16-wide subgroups; B read through a texture): batched
//! `C = alpha * op(A) op(B) (+ beta * C) (+ bias)`, and the backward (two matmuls for dA and
//! dB, a column sum for dbias).

use anyhow::{Result, bail};
use bytemuck::{Pod, Zeroable};

use super::texture::{pack, texture_size};
use super::{ensure_f32, reduce::colsum_into, to_u32};
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::shaders::{MATMUL, MATMUL_SUBGROUP, MATMUL_TILED, MATMUL_VEC4};

/// Where one operand's matrices sit in its tensor (in elements). Batch `z` of a product is
/// split as `z = outer * batch_inner + inner`, and the matrix starts at
/// `offset + outer * outer_stride + inner * inner_stride`; rows are `ld` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ld: usize,
    pub outer_stride: usize,
    pub inner_stride: usize,
    pub offset: usize,
}

/// A (batched) matrix product `C[z] = alpha * op(A[z]) * op(B[z])`, with `op(A)` M x K and
/// `op(B)` K x N. `A` is stored M x K, or K x M when `trans_a`; `B` is stored K x N, or N x K
/// when `trans_b`.
#[derive(Clone, Copy, Debug)]
pub struct Matmul {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Outer batch count.
    pub batch: usize,
    /// Inner batch count (attention heads); the product runs `batch * batch_inner` times.
    pub batch_inner: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a: Layout,
    pub b: Layout,
    pub c: Layout,
}

/// Register and workgroup tiling of one matmul kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tiling {
    pub wg_x: u32,
    pub wg_y: u32,
    /// Rows of C per invocation (<= 8; 4 or 8 for the vec4 kernel).
    pub tm: u32,
    /// Columns of C per invocation (<= 8; 4 or 8 for the vec4 kernel).
    pub tn: u32,
}

/// Which kernel computes a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kernel {
    /// The vec4 kernel when the layout allows it, else the general one, default tilings.
    Auto,
    /// The general kernel (scalar loads) with this tiling.
    General(Tiling),
    /// The vec4 kernel with this tiling (errors when the layout does not allow it).
    Vec4(Tiling),
    /// The workgroup-memory tiled kernel with this tiling (for GPUs).
    Workgroup(Tiling),
    /// The subgroup kernel with this many subgroups per workgroup, reading A through a
    /// texture when `tex_a` (and A fits one) or from its buffer (errors when the device or
    /// the layout does not allow the kernel).
    Subgroup { chunks: u32, tex_a: bool },
}

/// Subgroups per workgroup of the subgroup kernel by default.
pub const SUBGROUP_CHUNKS: u32 = 8;

pub const GENERAL_TILING: Tiling = Tiling {
    wg_x: 8,
    wg_y: 8,
    tm: 4,
    tn: 4,
};

/// The workgroup-memory kernel's default: 64 x 64 tiles, 16 x 16 invocations of 4 x 4.
pub const WORKGROUP_TILING: Tiling = Tiling {
    wg_x: 16,
    wg_y: 16,
    tm: 4,
    tn: 4,
};

pub const VEC4_TILING: Tiling = Tiling {
    wg_x: 8,
    wg_y: 8,
    tm: 8,
    tn: 8,
};

fn contiguous(rows: usize, cols: usize, batch_inner: usize) -> Layout {
    Layout {
        ld: cols,
        outer_stride: rows * cols * batch_inner,
        inner_stride: rows * cols,
        offset: 0,
    }
}

impl Matmul {
    /// `batch` independent products on contiguous row-major matrices.
    pub fn new(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
        let (br, bc) = if trans_b { (n, k) } else { (k, n) };
        Self {
            m,
            n,
            k,
            batch,
            batch_inner: 1,
            trans_a,
            trans_b,
            a: contiguous(ar, ac, 1),
            b: contiguous(br, bc, 1),
            c: contiguous(m, n, 1),
        }
    }

    /// Shape of the stored A matrix (rows, cols).
    fn a_dims(&self) -> (usize, usize) {
        if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        }
    }

    fn b_dims(&self) -> (usize, usize) {
        if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        }
    }

    /// Multiply-adds performed (for benchmarks).
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.batch_inner) as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// True when `gpu` and this product's layout allow the subgroup kernel: 8- or 16-wide subgroups,
    /// the vec4 alignment, and a B buffer that fits a texture with rows of `ldb` floats.
    pub fn subgroup_ok(&self, gpu: &Gpu, b_numel: usize) -> bool {
        let info = gpu.adapter_info();
        gpu.has_subgroups()
            && info.subgroup_min_size == info.subgroup_max_size
            && matches!(info.subgroup_min_size, 8 | 16)
            && self.vec4_ok()
            && texture_fits(gpu, b_numel, self.b.ld)
    }

    /// True when the vec4 kernel can run this product.
    pub fn vec4_ok(&self) -> bool {
        let four = |v: usize| v.is_multiple_of(4);
        four(self.k)
            && four(self.a.offset)
            && four(self.b.offset)
            && four(self.a.ld)
            && four(self.b.ld)
            && four(self.a.outer_stride)
            && four(self.a.inner_stride)
            && four(self.b.outer_stride)
            && four(self.b.inner_stride)
    }
}

/// The matmul kernels' uniform block: the same fields in the same order as
/// `shaders/lib/matmul_params.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch_inner: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    tex_width: u32,
    a_outer: u32,
    a_inner: u32,
    b_outer: u32,
    b_inner: u32,
    c_outer: u32,
    c_inner: u32,
    alpha: f32,
    beta: f32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    tex_height: u32,
    a_tex_width: u32,
    a_tex_height: u32,
    _pad: [u32; 2],
}

/// Errors unless `t` holds every element `layout` reaches for `batch` x `inner` matrices of
/// `rows` x `cols`.
fn check_footprint(
    what: &str,
    t: &Tensor,
    layout: &Layout,
    (rows, cols): (usize, usize),
    batch: usize,
    inner: usize,
) -> Result<()> {
    ensure_f32(what, t)?;
    if layout.ld < cols {
        bail!(
            "matmul: {what} leading dimension {} is below its {cols} columns",
            layout.ld
        );
    }
    let last = layout.offset
        + (batch - 1) * layout.outer_stride
        + (inner - 1) * layout.inner_stride
        + (rows - 1) * layout.ld
        + (cols - 1);
    if last >= t.numel() {
        bail!(
            "matmul: {what} {:?} holds {} elements, the layout reaches element {last}",
            t.shape(),
            t.numel()
        );
    }
    Ok(())
}

/// The register-tiled kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TiledKind {
    General,
    Vec4,
    Workgroup,
}

fn check_tiling(t: &Tiling, kind: TiledKind) -> Result<()> {
    let vec4 = kind == TiledKind::Vec4;
    if kind == TiledKind::Workgroup {
        let (bm, bn) = (t.wg_y * t.tm, t.wg_x * t.tn);
        if t.wg_x * t.wg_y > 256 || bm + bn > 256 {
            bail!(
                "matmul: workgroup tiling {t:?} exceeds 256 invocations or 16 KiB of workgroup memory"
            );
        }
    }
    let ok_tile = |v: u32| {
        if vec4 {
            v == 4 || v == 8
        } else {
            (1..=8).contains(&v)
        }
    };
    if !ok_tile(t.tm) || !ok_tile(t.tn) || t.wg_x == 0 || t.wg_y == 0 {
        bail!("matmul: unsupported tiling {t:?}");
    }
    Ok(())
}

/// Writes `alpha * op(A) op(B) + bias` into `c`, or adds it to `beta * c` when `beta != 0`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    spec: &Matmul,
    alpha: f32,
    beta: f32,
    kernel: Kernel,
) -> Result<()> {
    matmul_impl(a, b, bias, c, None, spec, alpha, beta, kernel)
}

/// The feed-forward layer's fused epilogue: `pre = op(A) op(B) + bias` and `post = gelu(pre)`
/// from one kernel, as new contiguous tensors.
pub fn matmul_bias_gelu(
    a: &Tensor,
    b: &Tensor,
    bias: &Tensor,
    spec: &Matmul,
    kernel: Kernel,
) -> Result<(Tensor, Tensor)> {
    let batches = spec.batch * spec.batch_inner;
    let shape = [batches * spec.m, spec.n];
    let pre = Tensor::empty(a.gpu(), &shape, DType::F32)?;
    let post = Tensor::empty(a.gpu(), &shape, DType::F32)?;
    let mut spec = *spec;
    spec.c = contiguous(spec.m, spec.n, spec.batch_inner);
    matmul_impl(a, b, Some(bias), &pre, Some(&post), &spec, 1.0, 0.0, kernel)?;
    Ok((pre, post))
}

#[allow(clippy::too_many_arguments)]
fn matmul_impl(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    gelu_out: Option<&Tensor>,
    spec: &Matmul,
    alpha: f32,
    beta: f32,
    kernel: Kernel,
) -> Result<()> {
    let s = spec;
    if s.batch == 0 || s.batch_inner == 0 || s.m == 0 || s.n == 0 {
        return Ok(());
    }
    if s.k == 0 {
        bail!("matmul: K = 0 (an empty inner dimension) is not supported");
    }
    let batches = s.batch * s.batch_inner;
    check_footprint("A", a, &s.a, s.a_dims(), s.batch, s.batch_inner)?;
    check_footprint("B", b, &s.b, s.b_dims(), s.batch, s.batch_inner)?;
    check_footprint("C", c, &s.c, (s.m, s.n), s.batch, s.batch_inner)?;
    if let Some(bias) = bias {
        bias.expect("matmul bias", &[s.n], DType::F32)?;
    }
    if let Some(d) = gelu_out
        && (beta != 0.0 || d.numel() != c.numel())
    {
        bail!("matmul: the GELU epilogue needs beta = 0 and an output shaped like C");
    }
    let gpu = c.gpu();
    if kernel == Kernel::Auto
        && gpu.autotune_enabled()
        && let Some(tuned) = super::autotune::tuned_kernel(gpu, a, b, s)?
    {
        return matmul_impl(a, b, bias, c, gelu_out, spec, alpha, beta, tuned);
    }
    let choice = match kernel {
        Kernel::Auto if prefers_subgroup(gpu) && s.subgroup_ok(gpu, b.numel()) => {
            Choice::Subgroup(SUBGROUP_CHUNKS, true)
        }
        Kernel::Auto if s.vec4_ok() => Choice::Tiled(TiledKind::Vec4, VEC4_TILING),
        Kernel::Auto => Choice::Tiled(TiledKind::General, GENERAL_TILING),
        Kernel::General(t) => Choice::Tiled(TiledKind::General, t),
        Kernel::Workgroup(t) => Choice::Tiled(TiledKind::Workgroup, t),
        Kernel::Vec4(t) => {
            if !s.vec4_ok() {
                bail!(
                    "matmul: the vec4 kernel needs K, offsets, leading dimensions and batch strides of A and B divisible by 4: {s:?}"
                );
            }
            Choice::Tiled(TiledKind::Vec4, t)
        }
        Kernel::Subgroup { chunks, tex_a } => {
            if !s.subgroup_ok(gpu, b.numel()) {
                bail!(
                    "matmul: the subgroup kernel needs 8- or 16-wide subgroups and the vec4 layout: {s:?}"
                );
            }
            if chunks == 0 {
                bail!("matmul: the subgroup kernel needs at least one subgroup per workgroup");
            }
            Choice::Subgroup(chunks, tex_a)
        }
    };
    let u = |what: &str, v: usize| to_u32(what, v);
    let mut params = Params {
        m: u("M", s.m)?,
        n: u("N", s.n)?,
        k: u("K", s.k)?,
        batch_inner: u("inner batch", s.batch_inner)?,
        lda: u("lda", s.a.ld)?,
        ldb: u("ldb", s.b.ld)?,
        ldc: u("ldc", s.c.ld)?,
        tex_width: 0,
        a_outer: u("A stride", s.a.outer_stride)?,
        a_inner: u("A stride", s.a.inner_stride)?,
        b_outer: u("B stride", s.b.outer_stride)?,
        b_inner: u("B stride", s.b.inner_stride)?,
        c_outer: u("C stride", s.c.outer_stride)?,
        c_inner: u("C stride", s.c.inner_stride)?,
        alpha,
        beta,
        a_offset: u("A offset", s.a.offset)?,
        b_offset: u("B offset", s.b.offset)?,
        c_offset: u("C offset", s.c.offset)?,
        tex_height: 0,
        a_tex_width: 0,
        a_tex_height: 0,
        _pad: [0; 2],
    };
    let flag = |v: bool| v as u32 as f64;
    let switches = [
        ("TRANS_A", flag(s.trans_a)),
        ("TRANS_B", flag(s.trans_b)),
        ("HAS_BIAS", flag(bias.is_some())),
        ("ACCUMULATE", flag(beta != 0.0)),
        ("GELU_OUT", flag(gelu_out.is_some())),
    ];
    // Without the GELU epilogue its output is not written; bind a scratch buffer.
    let scratch;
    let d = match gelu_out {
        Some(d) => d,
        None => {
            scratch = Tensor::empty(gpu, &[4], DType::F32)?;
            &scratch
        }
    };
    let batches = u("batches", batches)?;
    // Without a bias the binding is not read; bind A in its place.
    let bias = bias.unwrap_or(a);
    match choice {
        Choice::Subgroup(chunks, tex_a) => {
            let lanes = gpu.adapter_info().subgroup_min_size;
            let texture = pack(b, s.b.ld)?;
            (params.tex_width, params.tex_height) = texture.size();
            // A through a texture too when it fits one (a texel fetch beats a buffer load
            // whose address differs per lane).
            let a_texture = if tex_a && texture_fits(gpu, a.numel(), s.a.ld) {
                let t = pack(a, s.a.ld)?;
                (params.a_tex_width, params.a_tex_height) = t.size();
                Some(t)
            } else {
                None
            };
            let mut overrides = vec![
                ("CHUNKS", chunks as f64),
                ("TEX_A", flag(a_texture.is_some())),
                ("SG", lanes as f64),
            ];
            overrides.extend_from_slice(&switches);
            let a_view = a_texture.as_ref().map_or(texture.view(), |t| t.view());
            gpu.dispatch(&Dispatch {
                shader: &MATMUL_SUBGROUP,
                entry: "matmul_subgroup",
                defines: &[],
                overrides: &overrides,
                params: bytemuck::bytes_of(&params),
                buffers: &[a, bias, c, d],
                textures: &[texture.view(), a_view],
                workgroups: [
                    u("N tiles", s.n.div_ceil(4 * lanes as usize))?,
                    u("M tiles", s.m.div_ceil(16 * chunks as usize))?,
                    batches,
                ],
            })
        }
        Choice::Tiled(kind, tiling) => {
            check_tiling(&tiling, kind)?;
            let mut overrides = vec![
                ("WG_X", tiling.wg_x as f64),
                ("WG_Y", tiling.wg_y as f64),
                ("TM", tiling.tm as f64),
                ("TN", tiling.tn as f64),
            ];
            overrides.extend_from_slice(&switches);
            gpu.dispatch(&Dispatch {
                shader: match kind {
                    TiledKind::General => &MATMUL,
                    TiledKind::Vec4 => &MATMUL_VEC4,
                    TiledKind::Workgroup => &MATMUL_TILED,
                },
                entry: match kind {
                    TiledKind::General => "matmul",
                    TiledKind::Vec4 => "matmul_vec4",
                    TiledKind::Workgroup => "matmul_tiled",
                },
                defines: &[],
                overrides: &overrides,
                params: bytemuck::bytes_of(&params),
                buffers: &[a, b, bias, c, d],
                textures: &[],
                workgroups: [
                    u("N tiles", s.n.div_ceil((tiling.wg_x * tiling.tn) as usize))?,
                    u("M tiles", s.m.div_ceil((tiling.wg_y * tiling.tm) as usize))?,
                    batches,
                ],
            })
        }
    }
}

/// The kernel a product runs on.
enum Choice {
    /// One of the register-tiled kernels.
    Tiled(TiledKind, Tiling),
    /// The subgroup kernel with this many subgroups per workgroup, A from a texture or not.
    Subgroup(u32, bool),
}

/// True when `numel` floats in rows of `ld` fit one texture of this adapter.
fn texture_fits(gpu: &Gpu, numel: usize, ld: usize) -> bool {
    let max = gpu.limits().max_texture_dimension_2d as usize;
    let (width, height) = texture_size(numel, ld.max(1));
    ld.is_multiple_of(4) && width >= 1 && width <= max && height <= max
}

/// True on adapters where the subgroup kernel is the default (CPU adapters: lavapipe).
fn prefers_subgroup(gpu: &Gpu) -> bool {
    gpu.is_cpu_adapter()
}

/// `op(A) op(B) (+ bias)` as a new contiguous `[batch * batch_inner, M, N]` tensor (the
/// leading dimension collapses when there is one batch).
pub fn matmul(a: &Tensor, b: &Tensor, bias: Option<&Tensor>, spec: &Matmul) -> Result<Tensor> {
    let batches = spec.batch * spec.batch_inner;
    let shape: Vec<usize> = if batches == 1 {
        vec![spec.m, spec.n]
    } else {
        vec![batches, spec.m, spec.n]
    };
    let c = Tensor::empty(a.gpu(), &shape, DType::F32)?;
    let mut spec = *spec;
    spec.c = contiguous(spec.m, spec.n, spec.batch_inner);
    matmul_into(a, b, bias, &c, &spec, 1.0, 0.0, Kernel::Auto)?;
    Ok(c)
}

/// A gradient destination: the tensor, and whether to add to its contents.
pub type GradTarget<'a> = Option<(&'a Tensor, bool)>;

/// Gradients of `C = alpha * op(A) op(B) + bias` given `dc` (laid out as `spec.c`), written
/// into (or with the flag, added to) the given tensors: dA and dB take the layouts of A and
/// B; dbias needs a contiguous C.
#[allow(clippy::too_many_arguments)]
pub fn matmul_backward_into(
    a: &Tensor,
    b: &Tensor,
    dc: &Tensor,
    spec: &Matmul,
    alpha: f32,
    da: GradTarget<'_>,
    db: GradTarget<'_>,
    dbias: GradTarget<'_>,
) -> Result<()> {
    let s = spec;
    let broadcast = |l: &Layout| {
        (s.batch > 1 && l.outer_stride == 0) || (s.batch_inner > 1 && l.inner_stride == 0)
    };
    if (da.is_some() && broadcast(&s.a)) || (db.is_some() && broadcast(&s.b)) {
        bail!(
            "matmul backward: an operand shared across batches (stride 0) needs its batches folded into M instead"
        );
    }
    let beta = |accumulate: bool| if accumulate { 1.0 } else { 0.0 };
    let base = Matmul {
        batch: s.batch,
        batch_inner: s.batch_inner,
        ..*s
    };
    if let Some((da, acc)) = da {
        let grad = if s.trans_a {
            // dA (K x M) = op(B) (K x N) * dC^T (N x M)
            Matmul {
                m: s.k,
                n: s.m,
                k: s.n,
                trans_a: s.trans_b,
                trans_b: true,
                a: s.b,
                b: s.c,
                c: s.a,
                ..base
            }
        } else {
            // dA (M x K) = dC (M x N) * op(B)^T (N x K)
            Matmul {
                m: s.m,
                n: s.k,
                k: s.n,
                trans_a: false,
                trans_b: !s.trans_b,
                a: s.c,
                b: s.b,
                c: s.a,
                ..base
            }
        };
        let (x, y) = if s.trans_a { (b, dc) } else { (dc, b) };
        matmul_into(x, y, None, da, &grad, alpha, beta(acc), Kernel::Auto)?;
    }
    if let Some((db, acc)) = db {
        let grad = if s.trans_b {
            // dB (N x K) = dC^T (N x M) * op(A) (M x K)
            Matmul {
                m: s.n,
                n: s.k,
                k: s.m,
                trans_a: true,
                trans_b: s.trans_a,
                a: s.c,
                b: s.a,
                c: s.b,
                ..base
            }
        } else {
            // dB (K x N) = op(A)^T (K x M) * dC (M x N)
            Matmul {
                m: s.k,
                n: s.n,
                k: s.m,
                trans_a: !s.trans_a,
                trans_b: false,
                a: s.a,
                b: s.c,
                c: s.b,
                ..base
            }
        };
        let (x, y) = if s.trans_b { (dc, a) } else { (a, dc) };
        matmul_into(x, y, None, db, &grad, alpha, beta(acc), Kernel::Auto)?;
    }
    if let Some((dbias, acc)) = dbias {
        if s.c != contiguous(s.m, s.n, s.batch_inner) {
            bail!("matmul backward: the bias gradient needs a contiguous C layout");
        }
        let rows = s.batch * s.batch_inner * s.m;
        let view = dc.reshape(&[rows, s.n]);
        let view = match view {
            Ok(v) => v,
            Err(_) => bail!(
                "matmul backward: dC {:?} is not [{rows}, {}]",
                dc.shape(),
                s.n
            ),
        };
        colsum_into(&view, dbias, acc)?;
    }
    Ok(())
}

/// All gradients of `C = op(A) op(B) (+ bias)` for contiguous operands, as new tensors
/// shaped like `a`, `b` and `[N]`.
pub fn matmul_backward(
    a: &Tensor,
    b: &Tensor,
    dc: &Tensor,
    spec: &Matmul,
    with_bias: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let gpu = a.gpu();
    let da = Tensor::empty(gpu, a.shape(), DType::F32)?;
    let db = Tensor::empty(gpu, b.shape(), DType::F32)?;
    let dbias = if with_bias {
        Some(Tensor::empty(gpu, &[spec.n], DType::F32)?)
    } else {
        None
    };
    matmul_backward_into(
        a,
        b,
        dc,
        spec,
        1.0,
        Some((&da, false)),
        Some((&db, false)),
        dbias.as_ref().map(|t| (t, false)),
    )?;
    Ok((da, db, dbias))
}
