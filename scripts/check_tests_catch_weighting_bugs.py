"""Breaks each weighting method's formula in a small way (a sign, a normalisation, a
constant) and checks that the unit tests against tests/fixtures/weighting.json fail; restores
the file after each edit (also on Ctrl-C).

    python3 scripts/check_tests_catch_weighting_bugs.py

Each edit replaces one exact text of src/train/weighting/methods.rs; the script refuses to
start if a text is no longer there (an edit that silently does nothing proves nothing).
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILE = ROOT / "src" / "train" / "weighting" / "methods.rs"
EDITS = [
    ("rlw: softmax dropped", "    softmax(normals)\n", "    normals.to_vec()\n"),
    ("dwa: ratio inverted", ".map(|(a, b)| a / b / temperature)", ".map(|(a, b)| b / a / temperature)"),
    ("dwa: K factor dropped", "softmax(&r).iter().map(|w| k * w).collect()", "softmax(&r).iter().map(|w| w * 1.0).collect()"),
    ("uncertainty: weight not halved", ".map(|s| 0.5 * (-s).exp())", ".map(|s| (-s).exp())"),
    ("uncertainty: gradient sign", ".map(|(s, l)| 0.5 - 0.5 * l * (-s).exp())", ".map(|(s, l)| 0.5 + 0.5 * l * (-s).exp())"),
    ("famo: c not applied", ".map(|(z, d)| z / (c * d))", ".map(|(z, d)| z / d)"),
    ("famo: softmax pull-back mean dropped", ".map(|(z, d)| z * (d - mean))", ".map(|(z, d)| z * d)"),
    ("gradnorm: K factor dropped", "let w: Vec<f64> = z.iter().map(|z| k as f64 * z).collect();", "let w: Vec<f64> = z.to_vec();"),
    ("gradnorm: alpha ignored", "(ratio[i] / ratio_mean).powf(alpha)", "(ratio[i] / ratio_mean)"),
    ("pcgrad: projects on agreement", "            if dot < 0.0 {", "            if dot > 0.0 {"),
    ("pcgrad: projection not normalised", "let step = dot / gram[j][j];", "let step = dot;"),
    ("cagrad: rescale ignored", "        1 => 1.0 + c * c,", "        1 => 1.0,"),
    ("cagrad: radius without |g0|", "let radius = c * g0_norm + 1e-8;", "let radius = c + 1e-8;"),
    ("mgda: uniform weights", "    min_norm_point(gram)\n", "    vec![1.0 / gram.len() as f64; gram.len()]\n"),
    ("imtl: first weight sign", "let mut w = vec![1.0 - alpha.iter().sum::<f64>()];", "let mut w = vec![1.0 + alpha.iter().sum::<f64>()];"),
    ("imtl: raw gradients for U", "let gu = |a: usize, b: usize| gram[a][b] / norm[b];", "let gu = |a: usize, b: usize| gram[a][b];"),
]


def main():
    original = FILE.read_text()
    missing = [name for name, old, _ in EDITS if original.count(old) != 1]
    if missing:
        sys.exit(f"these edits no longer match exactly once in {FILE}: {missing}")
    caught = 0
    try:
        for name, old, new in EDITS:
            FILE.write_text(original.replace(old, new))
            result = subprocess.run(
                ["cargo", "test", "--lib", "train::weighting"], cwd=ROOT,
                capture_output=True, text=True)
            failed = result.returncode != 0 and "test result: FAILED" in result.stdout
            caught += failed
            print(f"{'caught ' if failed else 'MISSED '} {name}", flush=True)
    finally:
        FILE.write_text(original)
    print(f"{caught} of {len(EDITS)} edits caught")
    sys.exit(0 if caught == len(EDITS) else 1)


if __name__ == "__main__":
    main()
