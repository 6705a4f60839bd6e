"""Every multi-task weighting method on the demo, side by side: trains demo/four-tasks.toml with
`mixing = "all_tasks"` under each `[train] weighting` for the same step budget and seeds, and
each task alone (`--only TASK`, the same steps and seed) as the single-task baseline; then
evaluates every run on the test splits and prints one table: per-task test metrics, Delta-m %
against the single-task baselines, training time per step and peak memory, each as the mean
(and spread, max - min) over the seeds.

    python3 scripts/compare_methods.py [--steps 50] [--seeds 1,2] [--methods "static dwa:period=10"]
                                       [--config demo/four-tasks.toml] [--runs runs/compare]

Delta-m % = 100 / T * sum_i s_i (M_mt,i - M_st,i) / M_st,i over the T tasks' primary metrics,
s_i = +1 where higher is better (all of the demo's), for each seed against that seed's
single-task runs. Seed s sets both [encoder] seed (head initialization, dropout) and [train]
seed (batch order). Peak memory is the training process's maximum resident set (on a CPU
adapter such as lavapipe the GPU buffers live there too). Finished runs are reused, killed
ones resumed; the generated configs and runs go under --runs, never beside the inputs.
"""
import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tomllib

from single_task_baselines import PRIMARY, ROOT, TG, test_metrics

ALL_METHODS = ["static", "equal", "uncertainty", "dwa", "rlw", "famo",
               "gradnorm", "pcgrad", "cagrad", "mgda", "imtl"]


def run_measured(cmd):
    """Runs `cmd`; returns its maximum resident set in MiB (raises on failure)."""
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return usage.ru_maxrss / 1024.0


def parse_method(spec):
    """`name` or `name:key=value,key=value` (the method's [train.name] options)."""
    name, _, options = spec.partition(":")
    table = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        table[key.strip()] = value.strip()
    return name, table


def write_config(source, target, steps, seed, mixing, weighting, options=None):
    """`source` with absolute data paths and a [train] section of our own."""
    text = source.read_text()
    base = source.parent
    def absolute(m):
        value = m.group(2)
        path = pathlib.Path(value)
        return f'{m.group(1)}"{path if path.is_absolute() else (base / path).resolve()}"'
    text = re.sub(r'^((?:pretrained|train|dev|test) = )"([^"]*)"', absolute, text, flags=re.M)
    head, _, _ = text.partition("\n[train]")
    head = re.sub(r"^seed = \d+", f"seed = {seed}", head, count=1, flags=re.M)
    train = tomllib.loads(source.read_text())["train"]
    lines = ["[train]", f"steps = {steps}", f"batch_size = {train.get('batch_size', 16)}",
             f"lr = {train.get('lr', 1e-4)}", f"warmup = {train.get('warmup', 0.06)}",
             f'decay = "{train.get("decay", "linear")}"',
             f"weight_decay = {train.get('weight_decay', 0.01)}",
             f"clip = {train.get('clip', 1.0)}", f"eval_every = {steps}", "log_every = 5",
             f"seed = {seed}", f'mixing = "{mixing}"', f'weighting = "{weighting}"']
    if options:
        lines += ["", f"[train.{weighting}]"] + [f"{k} = {v}" for k, v in options.items()]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(head.rstrip() + "\n\n" + "\n".join(lines) + "\n")


def train(config, run, only=None):
    """Trains (or resumes, or reuses) `run`; returns (seconds per step, peak RSS MiB)."""
    done = run / "last" / "state.json"
    rss = None
    if done.exists():
        state = json.loads(done.read_text())
        if state["step"] < state["total_steps"]:
            rss = run_measured([TG, "train", "--resume", run])
    else:
        cmd = [TG, "train", config, "--out", run] + (["--only", only] if only else [])
        rss = run_measured(cmd)
    measured = run / "measured.json"
    if rss is not None or not measured.exists():
        rows = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
        last = [r for r in rows if r["kind"] == "train"][-1]
        figures = {"s_per_step": last["elapsed_s"] / last["step"], "peak_rss_mib": rss}
        measured.write_text(json.dumps(figures))
    return json.loads(measured.read_text())


def spread(values):
    return (max(values) - min(values)) if len(values) > 1 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "demo" / "four-tasks.toml"))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "compare"))
    ap.add_argument("--steps", type=int, default=50,
                    help="steps per run (all_tasks: one batch of every task per step)")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--methods", default=" ".join(ALL_METHODS),
                    help="space-separated; options as name:key=value,key=value "
                         "(e.g. dwa:period=10)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/taskgate as is")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run([sys.executable, ROOT / "scripts" / "fetch_assets.py", "minilm"], check=True)
        subprocess.run([sys.executable, ROOT / "scripts" / "demo_data.py"], check=True)
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    source = pathlib.Path(args.config).resolve()
    tasks = [(t["name"], t["kind"]) for t in tomllib.loads(source.read_text())["task"]]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split()
    runs = pathlib.Path(args.runs).resolve()

    baseline = {}  # (seed, task) -> metric
    for seed in seeds:
        config = runs / "configs" / f"single-s{seed}.toml"
        write_config(source, config, args.steps, seed, "one_task", "static")
        for name, kind in tasks:
            run = runs / f"single-{name}-s{seed}"
            train(config, run, only=name)
            baseline[(seed, name)] = test_metrics(run)[name][PRIMARY[kind]]

    results = {}
    for method in methods:
        name, options = parse_method(method)
        label = re.sub(r"[^A-Za-z0-9_.=-]+", "-", method)
        per_seed = []
        for seed in seeds:
            config = runs / "configs" / f"{label}-s{seed}.toml"
            write_config(source, config, args.steps, seed, "all_tasks", name, options)
            run = runs / f"{label}-s{seed}"
            figures = train(config, run)
            metrics = test_metrics(run)
            values = {name: metrics[name][PRIMARY[kind]] for name, kind in tasks}
            delta = 100.0 / len(tasks) * sum(
                (values[n] - baseline[(seed, n)]) / baseline[(seed, n)] for n, _ in tasks)
            per_seed.append({"seed": seed, "metrics": values, "delta_m": delta, **figures})
        results[method] = per_seed
    (runs / "results.json").write_text(json.dumps(
        {"steps": args.steps, "seeds": seeds, "baseline": {f"{n}-s{s}": v for (s, n), v in
                                                            baseline.items()},
         "methods": results}, indent=1))

    names = [n for n, _ in tasks]
    head = "| method | " + " | ".join(f"{n} {PRIMARY[k]}" for n, k in tasks) + \
        " | Delta-m % | s/step | peak RSS MiB |"
    lines = [head, "|" + "---|" * (len(tasks) + 4)]
    single = [statistics.mean(baseline[(s, n)] for s in seeds) for n in names]
    single_spread = [spread([baseline[(s, n)] for s in seeds]) for n in names]
    lines.append("| single-task | " + " | ".join(
        f"{m:.4f} ± {d:.4f}" for m, d in zip(single, single_spread)) + " | 0 | | |")
    for method, per_seed in results.items():
        cells = []
        for n in names:
            v = [r["metrics"][n] for r in per_seed]
            cells.append(f"{statistics.mean(v):.4f} ± {spread(v):.4f}")
        d = [r["delta_m"] for r in per_seed]
        t = [r["s_per_step"] for r in per_seed]
        mem = [r["peak_rss_mib"] for r in per_seed if r["peak_rss_mib"]]
        cells.append(f"{statistics.mean(d):+.2f} ± {spread(d):.2f}")
        cells.append(f"{statistics.mean(t):.2f}")
        cells.append(f"{max(mem):.0f}" if mem else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    note = (f"\n{args.steps} steps of one batch per task ({len(seeds)} seeds: {args.seeds}); "
            "values: mean ± spread (max - min) over the seeds.")
    (runs / "table.md").write_text(table + "\n" + note + "\n")
    print(table)
    print(note)


if __name__ == "__main__":
    main()
