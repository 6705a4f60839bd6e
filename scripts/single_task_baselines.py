"""Multi-task vs single-task on the demo: trains demo/four-tasks.toml once as one multi-task model
and once per task with `--only TASK` (same settings and steps), evaluates every model on the
test splits and prints a table of per-task test metrics and Delta-m.

    python3 scripts/single_task_baselines.py [--config demo/four-tasks.toml] [--runs runs/baselines]

Delta-m % = 100 / T * sum_i s_i * (M_mt,i - M_st,i) / M_st,i over the T tasks, with M the
task's primary metric (accuracy, Pearson, token accuracy) and s_i = +1 when higher is better
(-1 for MSE-like metrics; none here). Positive = the multi-task model is better.
Existing finished runs are reused, interrupted ones resumed.
"""
import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TG = ROOT / "target" / "release" / "taskgate"
PRIMARY = {"classification": "accuracy", "multilabel": "micro_f1", "regression": "pearson",
           "token_classification": "token_accuracy"}
LOWER_IS_BETTER = {"mse"}


def train(config, run, only=None):
    state = run / "last" / "state.json"
    if state.exists():
        s = json.loads(state.read_text())
        if s["step"] < s["total_steps"]:
            subprocess.run([TG, "train", "--resume", run], check=True)
        return
    cmd = [TG, "train", config, "--out", run] + (["--only", only] if only else [])
    subprocess.run(cmd, check=True)


def test_metrics(run):
    out = subprocess.run([TG, "eval", run, "--split", "test", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["metrics"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "demo" / "four-tasks.toml"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "baselines"))
    ap.add_argument("--multitask-run", help="use this finished multi-task run (e.g. runs/demo) instead of training one")
    args = ap.parse_args()
    subprocess.run([sys.executable, ROOT / "scripts" / "fetch_assets.py", "minilm"], check=True)
    subprocess.run([sys.executable, ROOT / "scripts" / "demo_data.py"], check=True)
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)  # with its progress
    import tomllib
    config = pathlib.Path(args.config).resolve()
    tasks = [(t["name"], t["kind"]) for t in tomllib.loads(config.read_text())["task"]]
    runs = pathlib.Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    mt_run = pathlib.Path(args.multitask_run) if args.multitask_run else runs / "multitask"
    if not args.multitask_run:
        train(config, mt_run)
    mt = test_metrics(mt_run)
    rows, deltas = [], []
    for name, kind in tasks:
        train(config, runs / f"single-{name}", only=name)
        st = test_metrics(runs / f"single-{name}")[name]
        metric = PRIMARY[kind]
        m, s = mt[name][metric], st[metric]
        sign = -1 if metric in LOWER_IS_BETTER else 1
        delta = 100.0 * sign * (m - s) / s if s else float("nan")
        deltas.append(delta)
        rows.append((name, metric, m, s, delta))
    print(f"\n| task | metric | multi-task | single-task | relative diff % |")
    print("|---|---|---|---|---|")
    for name, metric, m, s, d in rows:
        print(f"| {name} | {metric} | {m:.4f} | {s:.4f} | {d:+.2f} |")
    print(f"\nDelta-m = {sum(deltas) / len(deltas):+.2f} % (positive: multi-task better)")


if __name__ == "__main__":
    main()
