#!/usr/bin/env python3
"""Compares two taskgate dumps (safetensors), e.g. `taskgate dump` output against
`multitask.py` output.

    python3 tests/reference/compare_dumps.py A.safetensors B.safetensors [--tol 1e-4] [--atol 1e-6] [--quiet]

B is the reference. For every key it prints the max absolute error max|a-b| and the norm-wise
relative error ||a-b|| / ||b|| (0 when both are zero, inf when only B is zero), then a summary
per family: inputs (input_ids, token_type_ids, attention_mask), hidden, logits, gate, loss,
grad. The summary gives the family's max abs error, its worst per-key relative error, and the
relative error of the family as a whole (all its keys concatenated).

Exit status 1 when a key is present in only one file or shapes differ; with --tol also when
the integer inputs differ or a float key has relative error > tol AND max abs error > atol.
The atol escape exists for gradients that are analytically zero, whose reference is
rounding noise: the attention key biases (softmax ignores a per-query constant), so
grad.*.attention.self.key.bias has ||b|| ~ 1e-17 and any relative error is meaningless.
"""
import argparse
import math
import sys

import numpy as np
from safetensors.numpy import load_file

FAMILIES = ("inputs", "hidden", "logits", "gate", "loss", "grad", "other")


def family(key: str) -> str:
    if key in ("input_ids", "token_type_ids", "attention_mask"):
        return "inputs"
    if key == "hidden":
        return "hidden"
    if key == "loss" or key.startswith("loss."):
        return "loss"
    head = key.split(".", 1)[0]
    return head if head in FAMILIES else "other"


def rel_error(nd: float, nb: float) -> float:
    if math.isnan(nd) or math.isnan(nb):
        return math.nan
    if nb == 0.0:
        return 0.0 if nd == 0.0 else math.inf
    return nd / nb


def worse(x: float, y: float) -> bool:
    """x is worse than y (NaN is the worst)."""
    return (math.isnan(x) and not math.isnan(y)) or x > y


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compare two taskgate dumps (B is the reference).")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=None,
                    help="fail (exit 1) when a float key's relative error exceeds this "
                         "(and its max abs error exceeds --atol)")
    ap.add_argument("--atol", type=float, default=1e-6,
                    help="absolute error below which a key passes regardless of --tol (default 1e-6)")
    ap.add_argument("--quiet", action="store_true", help="print only the family summary")
    args = ap.parse_args(argv)

    A, B = load_file(args.a), load_file(args.b)
    failed = False
    only_a = sorted(set(A) - set(B))
    only_b = sorted(set(B) - set(A))
    for k in only_a:
        print(f"only in {args.a}: {k}")
    for k in only_b:
        print(f"only in {args.b}: {k}")
    failed |= bool(only_a or only_b)

    # family -> [keys, max abs, worst rel, worst key, sum |d|^2, sum |b|^2]
    summary = {f: [0, 0.0, 0.0, "", 0.0, 0.0] for f in FAMILIES}
    common = sorted(set(A) & set(B))
    width = max((len(k) for k in common), default=10)
    if not args.quiet:
        print(f"{'key':<{width}}  {'shape':<16} {'max abs':>11} {'rel':>11}")
    for k in common:
        a, b = A[k], B[k]
        fam = family(k)
        if a.shape != b.shape:
            print(f"{k:<{width}}  shape mismatch {a.shape} vs {b.shape}")
            failed = True
            continue
        d = a.astype(np.float64) - b.astype(np.float64)
        max_abs = float(np.max(np.abs(d))) if d.size else 0.0
        nd2 = float(np.sum(d * d))
        nb2 = float(np.sum(b.astype(np.float64) ** 2))
        rel = rel_error(math.sqrt(nd2), math.sqrt(nb2))
        flag = ""
        if fam == "inputs":
            if max_abs != 0.0:
                flag = "  MISMATCH"
                failed |= args.tol is not None
        elif args.tol is not None and not (rel <= args.tol or max_abs <= args.atol):
            flag = "  FAIL"
            failed = True
        elif args.tol is not None and not rel <= args.tol:
            flag = "  (rel > tol but max abs <= atol)"
        if not args.quiet:
            print(f"{k:<{width}}  {str(tuple(a.shape)):<16} {max_abs:11.3e} {rel:11.3e}{flag}")
        s = summary[fam]
        s[0] += 1
        if worse(max_abs, s[1]):
            s[1] = max_abs
        if s[3] == "" or worse(rel, s[2]):
            s[2], s[3] = rel, k
        s[4] += nd2
        s[5] += nb2

    print()
    print(f"{'family':<8} {'keys':>5} {'max abs':>11} {'family rel':>11} {'worst rel':>11}  worst key")
    for fam in FAMILIES:
        n, max_abs, rel, worst, nd2, nb2 = summary[fam]
        if n:
            fam_rel = rel_error(math.sqrt(nd2), math.sqrt(nb2))
            print(f"{fam:<8} {n:>5} {max_abs:11.3e} {fam_rel:11.3e} {rel:11.3e}  {worst}")
    if failed:
        print("FAILED" if args.tol is not None else "FAILED (keys or shapes differ)")
    elif args.tol is not None:
        print(f"OK (tol {args.tol:g}, atol {args.atol:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
