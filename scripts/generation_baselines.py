"""Trivial baselines for the two generation tasks of the demo data (python3
scripts/demo_data.py first): on each task's test split, exact match, corpus BLEU and chrF (the
metrics `taskgate eval` reports, computed here by sacrebleu, which taskgate's equal) of

- copy: the input text as the output (for define, the word without its part of speech);
- most frequent: the training split's most frequent target, for every input;
- add "s" (inflect only): the singular plus "s", English's regular plural.

    pip install sacrebleu && python3 scripts/generation_baselines.py
"""
import collections
import json
import pathlib

import sacrebleu

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "demo"


def read(task, split):
    with open(DATA / task / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def scores(hyps, refs):
    exact = sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(refs)
    bleu = sacrebleu.corpus_bleu(hyps, [refs]).score
    chrf = sacrebleu.corpus_chrf(hyps, [refs]).score
    return exact, bleu, chrf


def main():
    print(f"sacrebleu {sacrebleu.__version__}; test splits of data/demo/")
    print(f"| task | baseline | exact match | BLEU | chrF |")
    print(f"|---|---|---|---|---|")
    for task in ["define", "inflect"]:
        train, test = read(task, "train"), read(task, "test")
        refs = [r["target"] for r in test]
        common = collections.Counter(r["target"] for r in train).most_common(1)[0][0]
        baselines = {
            "copy the input": [r["text"].split(" (")[0] for r in test],
            f"most frequent target ({common[:30]!r})": [common] * len(test),
        }
        if task == "inflect":
            baselines['add "s"'] = [r["text"] + "s" for r in test]
        for name, hyps in baselines.items():
            exact, bleu, chrf = scores(hyps, refs)
            print(f"| {task} | {name} | {exact:.3f} | {bleu:.2f} | {chrf:.2f} |")


if __name__ == "__main__":
    main()
