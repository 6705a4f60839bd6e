"""Breaks each kernel on purpose, one small edit at a time, and checks that the kernel tests
fail for every edit (a test suite that cannot fail proves nothing). Both the kernel tests
and the model tests (PyTorch parity, training) run, so the output also shows which model-level
tests each kernel bug breaks.

Run from the repository root: python3 scripts/check_tests_catch_kernel_bugs.py [TEXT]
(with TEXT, only the edits whose file name contains it). Each edit is undone afterwards; takes a few minutes (one rebuild per edit).
"""
import os
import pathlib
import subprocess
import sys
muts = [
 ("shaders/matmul.wgsl", "for (var kk = 0u; kk < p.k; kk++)", "for (var kk = 0u; kk + 1u < p.k; kk++)"),
 ("shaders/matmul_vec4.wgsl", "b_cols[1u * tn4 + j / 4u][j % 4u] = v.y;", "b_cols[1u * tn4 + j / 4u][j % 4u] = v.z;"),
 ("shaders/softmax.wgsl", "(dy[base + c] - dot)", "(dy[base + c] + dot)"),
 ("shaders/layernorm.wgsl", "reduce_sum(lid, q) / f32(p.d) + p.eps", "reduce_sum(lid, q) / f32(p.d) + p.eps * 10.0"),
 ("shaders/layernorm.wgsl", "dx[base + j] = r * (g - sums.x - xhat * sums.y);", "dx[base + j] = r * (g - sums.x);"),
 ("shaders/activation.wgsl", "out[i] = dy[i] * (cdf + v * pdf);", "out[i] = dy[i] * cdf;"),
 ("shaders/gate.wgsl", "da[i] = acc * s * (1.0 - s);", "da[i] = acc * s;"),
 ("shaders/embedding.wgsl", "dtable[row] = dtable[row] + acc;", "dtable[row] = acc;"),
 ("shaders/reduce.wgsl", "for (var r = start; r < end; r++)", "for (var r = start; r + 1u < end; r++)"),
 ("shaders/loss.wgsl", "(p.weight_total * prob - wc)", "(prob - wc)"),
 ("shaders/adamw.wgsl", "sqrt(vi) / sqrt(p.bc2) + p.eps", "sqrt(vi) + p.eps"),
 ("shaders/elementwise.wgsl", "out[i] = out[i] + p.alpha * a[i];", "out[i] = p.alpha * a[i];"),
 ("shaders/reduce.wgsl", "i += p.threads", "i += p.threads + 1u"),
 ("shaders/loss.wgsl", "loss = max(v, 0.0) - v * t + softplus_neg_abs(v);", "loss = max(v, 0.0) - v * t;"),
 ("shaders/matmul_tiled.wgsl", "for (var kk = 0u; kk < BK; kk++)", "for (var kk = 0u; kk + 1u < BK; kk++)"),
 ("shaders/matmul_subgroup.wgsl", "fma(vec4(a_k.w), b[3],", "fma(vec4(a_k.z), b[3],"),
 ("shaders/matmul_subgroup.wgsl", "subgroupBroadcast(v, 14u), subgroupBroadcast(v, 15u)", "subgroupBroadcast(v, 14u), subgroupBroadcast(v, 14u)",
  {"LP_NATIVE_VECTOR_WIDTH": "512"}),  # the 16-wide path (lavapipe with 512-bit vectors)
 ("shaders/attention.wgsl", "acc[c] = acc[c] * rescale + weight", "acc[c] = acc[c] + weight"),
 ("shaders/attention.wgsl", "select(0.0, 1.0 / running_sum, running_sum > 0.0)", "1.0 / running_sum"),
]
only = sys.argv[1] if len(sys.argv) > 1 else ""
muts = [m for m in muts if only in m[0]]
missed = 0
for path, old, new, *env in muts:
    p = pathlib.Path(path); orig = p.read_text()
    assert old in orig, (path, old)
    p.write_text(orig.replace(old, new, 1))
    try:
        r = subprocess.run(["cargo", "test", "-q", "--test", "kernels", "--test", "model", "--no-fail-fast"], capture_output=True, text=True,
                           env={**os.environ, **(env[0] if env else {})})
        out = r.stdout + r.stderr
        names = [l.strip() for l in out.splitlines() if l.startswith("    ") and "::" in l]
        caught = r.returncode != 0 and names
        print(f"{'caught' if caught else 'MISSED'}: {path}: {new[:50]!r} -> {names[:12]}", flush=True)
        missed += not caught
    finally:
        p.write_text(orig)
sys.exit(1 if missed else 0)
