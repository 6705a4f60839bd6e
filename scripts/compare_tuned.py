"""Did tuning help? Compares a finished `taskgate tune` study's best trial with the hand-set
config on the test splits, which the study never saw.

    python3 scripts/compare_tuned.py runs/tune [--config demo/four-tasks.toml] [--long-steps 700]
        [--long-handset runs/demo]

1. The hand-set config trained with the study's steps per trial (`taskgate train CONFIG
   --steps S`, into STUDY/../NAME-handset), against the best trial's own run: both models
   are their last checkpoints (the step the study's objective was measured at).
2. With --long-steps N: the study's best.toml trained for N steps (into NAME-best-N), against
   the hand-set config trained for N steps (--long-handset: an existing finished run of it,
   e.g. runs/demo from demo/run.sh; else trained into NAME-handset-N); both models are the
   runs' best checkpoints, as `taskgate eval` picks them.

Prints per-task test metrics (each task's primary metric) and their mean. Finished runs are
reused, so the script can be run again to print the table.
"""
import argparse
import json
import pathlib
import subprocess
import tomllib

from single_task_baselines import PRIMARY, ROOT, TG, test_metrics


def train(args, out):
    if (out / "last" / "state.json").exists():
        s = json.loads((out / "last" / "state.json").read_text())
        if s["step"] < s["total_steps"]:
            subprocess.run([TG, "train", "--resume", out], check=True)
        return
    if out.exists():
        subprocess.run(["rm", "-rf", out], check=True)
    subprocess.run([TG, "train", *args, "--out", out], check=True)


def row(name, metrics, tasks):
    values = [metrics[t][PRIMARY[k]] for t, k in tasks]
    cells = " | ".join(f"{v:.4f}" for v in values)
    return f"| {name} | {cells} | {sum(values) / len(values):.4f} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study")
    ap.add_argument("--config", default=str(ROOT / "demo" / "four-tasks.toml"))
    ap.add_argument("--long-steps", type=int)
    ap.add_argument("--long-handset")
    args = ap.parse_args()
    study = pathlib.Path(args.study).resolve()
    config = pathlib.Path(args.config).resolve()
    tasks = [(t["name"], t["kind"]) for t in tomllib.loads(config.read_text())["task"]]
    records = [json.loads(l) for l in (study / "study.jsonl").read_text().splitlines() if l.strip()]
    scored = [r for r in records if r.get("objective") is not None]
    best = max(scored, key=lambda r: (r["objective"], -r["trial"]))
    steps = best["steps"]
    total_s = sum(r["time_s"] for r in records)
    print(f"study {study}: {len(records)} trials, {total_s / 60:.1f} min of trials; best trial "
          f"{best['trial']:03d} (dev objective {best['objective']:.4f}): {best['params']}")
    handset = study.parent / f"{study.name}-handset"
    train([config, "--steps", str(steps)], handset)
    header = "| model | " + " | ".join(f"{t} {PRIMARY[k]}" for t, k in tasks) + " | mean |"
    print(header)
    print("|---" * (len(tasks) + 2) + "|")
    print(row(f"hand-set, {steps} steps", test_metrics(handset / "last"), tasks), flush=True)
    trial_run = study / "trials" / f"{best['trial']:03d}"
    print(row(f"tuned (trial {best['trial']:03d}), {steps} steps", test_metrics(trial_run / "last"), tasks), flush=True)
    if args.long_steps:
        n = args.long_steps
        long_handset = pathlib.Path(args.long_handset) if args.long_handset else study.parent / f"{study.name}-handset-{n}"
        if not args.long_handset:
            train([config, "--steps", str(n)], long_handset)
        long_best = study.parent / f"{study.name}-best-{n}"
        train([study / "best.toml", "--steps", str(n)], long_best)
        print(row(f"hand-set, {n} steps (best/)", test_metrics(long_handset), tasks), flush=True)
        print(row(f"tuned best.toml, {n} steps (best/)", test_metrics(long_best), tasks), flush=True)


if __name__ == "__main__":
    main()
