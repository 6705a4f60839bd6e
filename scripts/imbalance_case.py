"""An imbalanced case on the demo data: the hedge task (CoNLL-2010 sentences, uncertain vs
certain) with its training split subsampled to 1 uncertain : 9 certain, trained alone from
MiniLM's first 2 layers with and without `class_weights = "balanced"`, and evaluated on the
untouched test split (296 sentences, about half uncertain) and on a 1:9 subsample of it.

    python3 scripts/imbalance_case.py [--steps 300] [--seeds 1,2] [--runs runs/imbalance]

Both runs keep everything else equal (demo/four-tasks.toml's encoder and [train], eval only at the
end: the models compared are the last checkpoints, with no selection on the dev split).
Prints a table of accuracy, macro-F1 and MCC (the minority class is what macro-F1 and MCC
see). The subsample is seeded; data go to data/imbalance/ (made from data/demo/, never
committed).
"""
import argparse
import csv
import json
import pathlib
import random
import subprocess
import sys
import tomllib

from single_task_baselines import ROOT, TG, test_metrics

SOURCE = ROOT / "data" / "demo" / "hedge"
DATA = ROOT / "data" / "imbalance" / "hedge-1to9"


def subsample(rows, minority, ratio, seed):
    rng = random.Random(seed)
    major = [r for r in rows if r[0] != minority]
    minor = [r for r in rows if r[0] == minority]
    keep = rng.sample(minor, max(1, len(major) // ratio))
    out = major + keep
    rng.shuffle(out)
    return out


def make_data():
    DATA.mkdir(parents=True, exist_ok=True)
    read = lambda split: list(csv.reader(open(SOURCE / f"{split}.csv", newline="")))
    for name, rows in [
        ("train.csv", subsample(read("train"), "uncertain", 9, 0)),
        ("dev.csv", read("dev")),
        ("test.csv", read("test")),
        ("test-1to9.csv", subsample(read("test"), "uncertain", 9, 1)),
    ]:
        with open(DATA / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        counts = {}
        for r in rows:
            counts[r[0]] = counts.get(r[0], 0) + 1
        print(f"{name}: {len(rows)} rows {counts}")


def config_text(steps, seed, weighted, test):
    demo = tomllib.loads((ROOT / "demo" / "four-tasks.toml").read_text())
    enc = demo["encoder"]
    train = demo["train"]
    return f"""# Written by scripts/imbalance_case.py: the hedge task alone, trained on a 1:9 subsample.
[encoder]
pretrained = "{ROOT / 'models' / 'all-MiniLM-L6-v2'}"
layers = {enc['layers']}
max_length = {enc['max_length']}
dropout = {enc['dropout']}
seed = {seed}

[[task]]
name = "hedge"
kind = "classification"
labels = ["uncertain", "certain"]
train = "{DATA / 'train.csv'}"
dev = "{DATA / 'dev.csv'}"
test = "{DATA / test}"
header = false
text_column = 1
label_column = 0
pooling = "mean"
{'class_weights = "balanced"' if weighted else ''}

[train]
steps = {steps}
batch_size = {train['batch_size']}
lr = {train['lr']}
warmup = {train['warmup']}
eval_every = 0
seed = {seed}
"""


def run(runs, steps, seed, weighted):
    name = f"{'balanced' if weighted else 'plain'}-seed{seed}"
    out = runs / name
    state = out / "last" / "state.json"
    if not (state.exists() and json.loads(state.read_text())["step"] >= steps):
        if out.exists():
            subprocess.run([TG, "train", "--resume", out], check=True)
        else:
            config = runs / f"{name}.toml"
            config.write_text(config_text(steps, seed, weighted, "test.csv"))
            subprocess.run([TG, "train", config, "--out", out], check=True)
    metrics = {}
    for test in ["test.csv", "test-1to9.csv"]:
        # The same model evaluated on each test file: a copy of last/ whose config names it.
        model = runs / f"{name}-{test.removesuffix('.csv')}"
        if not model.exists():
            subprocess.run(["cp", "-r", out / "last", model], check=True)
            toml = model / "taskgate.toml"
            text = toml.read_text()
            toml.write_text(text.replace(str(DATA / "test.csv"), str(DATA / test)))
        metrics[test] = test_metrics(model)["hedge"]
    return metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "imbalance"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run([sys.executable, ROOT / "scripts" / "fetch_assets.py", "minilm"], check=True)
        subprocess.run([sys.executable, ROOT / "scripts" / "demo_data.py"], check=True)
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    make_data()
    runs = pathlib.Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    print(f"| class_weights | seed | test: accuracy | macro-F1 | MCC | 1:9 test: accuracy | macro-F1 | MCC |")
    print("|---|---|---|---|---|---|---|---|")
    for weighted in [False, True]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            m = run(runs, args.steps, seed, weighted)
            cells = [f"{m[t][k]:.3f}" for t in ["test.csv", "test-1to9.csv"] for k in ["accuracy", "macro_f1", "mcc"]]
            print(f"| {'balanced' if weighted else 'none'} | {seed} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
