"""Breaks each kernel (and the few layouts host code hands them) on purpose, one small edit at a time, and checks that the kernel tests
fail for every edit (a test suite that cannot fail proves nothing). Both the kernel tests
and the model tests (PyTorch parity, training) run, so the output also shows which model-level
tests each kernel bug breaks.

    python3 scripts/check_tests_catch_kernel_bugs.py [TEXT] [--rev REV]

TEXT keeps only the edits whose file name contains it. The edits are made in a private copy of
the source tree (the working tree's tracked and untracked files, or commit REV), never in the
checkout itself, so interrupting the script or editing meanwhile is safe. Build artifacts of
dependencies are shared through target/ (one rebuild of taskgate per edit, a minute or two).
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
muts = [
 ("shaders/matmul.wgsl", "for (var kk = 0u; kk < p.k; kk++)", "for (var kk = 0u; kk + 1u < p.k; kk++)"),
 ("shaders/matmul_vec4.wgsl", "b_cols[1u * tn4 + j / 4u][j % 4u] = v.y;", "b_cols[1u * tn4 + j / 4u][j % 4u] = v.z;"),
 ("shaders/softmax.wgsl", "y[base + c] * (g - dot);", "y[base + c] * (g + dot);"),
 ("shaders/softmax.wgsl", "yv * (g - vec4(dot));", "yv * (g + vec4(dot));"),
 ("shaders/layernorm.wgsl", "workgroup_reduce(lid, q, false) / f32(p.d) + p.eps", "workgroup_reduce(lid, q, false) / f32(p.d) + p.eps * 10.0"),
 ("shaders/layernorm.wgsl", "dx[base + j] = r * (g - sums.x - xhat * sums.y);", "dx[base + j] = r * (g - sums.x);"),
 ("shaders/lib/gelu.wgsl", "return cdf + v * exp(", "return cdf + 0.0 * exp("),
 ("shaders/gate.wgsl", "da[i] = acc * s * (1.0 - s);", "da[i] = acc * s;"),
 ("shaders/embedding.wgsl", "dtable[row] = dtable[row] + acc;", "dtable[row] = acc;"),
 ("shaders/reduce.wgsl", "for (var r = start; r < end; r++)", "for (var r = start; r + 1u < end; r++)"),
 ("shaders/loss.wgsl", "(p.weight_total * prob - wc)", "(prob - wc)"),
 ("shaders/adamw.wgsl", "sqrt(vi) / sqrt(p.bc2) + p.eps", "sqrt(vi) + p.eps"),
 ("shaders/elementwise.wgsl", "out[i] = out[i] + p.alpha * a[i];", "out[i] = p.alpha * a[i];"),
 ("shaders/elementwise.wgsl", "out[i] + (p.alpha * weights[p.index]) * a[i]", "out[i] + p.alpha * a[i]"),
 ("shaders/loss.wgsl", "return p.grad_scale * task_weights[p.weight_index];", "return p.grad_scale;"),
 ("shaders/reduce.wgsl", "i += p.threads", "i += p.threads + 1u"),
 ("shaders/loss.wgsl", "loss = (1.0 - t) * v + lw * (softplus_neg_abs(v) + max(-v, 0.0));", "loss = (1.0 - t) * v + lw * max(-v, 0.0);"),
 ("shaders/loss.wgsl", "let lw = 1.0 + (weight(c) - 1.0) * t;", "let lw = 1.0 + (weight(c) - 1.0);"),
 ("shaders/matmul_tiled.wgsl", "for (var kk = 0u; kk < BK; kk++)", "for (var kk = 0u; kk + 1u < BK; kk++)"),
 ("shaders/matmul_subgroup.wgsl", "fma(vec4(a_k.w), b[3],", "fma(vec4(a_k.z), b[3],"),
 ("shaders/matmul_subgroup.wgsl", "subgroupBroadcast(v, 14u), subgroupBroadcast(v, 15u)", "subgroupBroadcast(v, 14u), subgroupBroadcast(v, 14u)",
  {"LP_NATIVE_VECTOR_WIDTH": "512"}),  # the 16-wide path (lavapipe with 512-bit vectors)
 ("shaders/attention.wgsl", "acc[c] = acc[c] * rescale + weight", "acc[c] = acc[c] + weight"),
 ("shaders/attention.wgsl", "select(0.0, 1.0 / running_sum, running_sum > 0.0)", "1.0 / running_sum"),
 # decoder attention: a causal mask off by one, a cross-attention key layout read with the
 # query length (the same for self-attention; wrong only when tq != tk)
 ("shaders/softmax.wgsl", "return row % p.queries + 1u + p.cols - p.queries;", "return row % p.queries + 2u + p.cols - p.queries;"),
 ("src/nn/attention.rs", "let (tq, tk, d) = (g.tq, g.tk, g.d);", "let (tq, tk, d) = (g.tq, g.tk, g.d);\n        let g = &Geometry { kv_rows: tq, ..*g };"),
 # the tied output projection's gradient: each chunk overwrites d(word embeddings)
 ("src/nn/tied_output.rs", "Some((de, true)),", "Some((de, false)),"),
]
args = sys.argv[1:]
rev = None
if "--rev" in args:
    i = args.index("--rev")
    rev = args[i + 1]
    del args[i:i + 2]
only = args[0] if args else ""
muts = [m for m in muts if only in m[0]]

work = pathlib.Path(tempfile.mkdtemp(prefix="taskgate-mutations-"))
if rev:
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
else:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
if (ROOT / "models").exists():  # the fetched MiniLM (gitignored) for its parity test
    (work / "models").symlink_to(ROOT / "models")
os.chdir(work)
print(f"mutating a copy in {work} ({'commit ' + rev if rev else 'working tree'})", flush=True)
env_base = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target")}

stale = [(path, old) for path, old, *_ in muts if old not in pathlib.Path(path).read_text()]
if stale:  # a kernel was edited since: update the list before mutating anything
    sys.exit(f"edits whose text is no longer in the shader: {stale}")
missed = 0
for path, old, new, *env in muts:
    p = pathlib.Path(path); orig = p.read_text()
    assert old in orig, (path, old)
    p.write_text(orig.replace(old, new, 1))
    try:
        r = subprocess.run(["cargo", "test", "-q", "--test", "kernels", "--test", "model", "--no-fail-fast"], capture_output=True, text=True,
                           env={**env_base, **(env[0] if env else {})})
        out = r.stdout + r.stderr
        names = [l.strip() for l in out.splitlines() if l.startswith("    ") and "::" in l]
        caught = r.returncode != 0 and names
        print(f"{'caught' if caught else 'MISSED'}: {path}: {new[:50]!r} -> {names[:12]}", flush=True)
        missed += not caught
    finally:
        p.write_text(orig)
shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if missed else 0)
