#!/usr/bin/env python3
"""Makes tests/fixtures/parity/: a tiny random taskgate model directory, two batches and the
PyTorch reference dumps (float64 compute, f32 on disk) that taskgate must reproduce.

Run from the repository root:  python3 tests/reference/make_parity_fixture.py [--out DIR]

Writes
    taskgate.toml, tokenizer.json, model.safetensors        the model directory
    batch.jsonl, expected.safetensors                       5 examples, every task partly labelled
    batch_partial.jsonl, expected_partial.safetensors       3 examples, `topics` never labelled

Everything is seeded, so rerunning reproduces the same files.
"""
import argparse
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import multitask  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = 20240611

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "a", "an", "this", "it", "i", "we", "they", "is", "was", "were", "are", "be",
    "movie", "film", "actor", "actors", "plot", "story", "music", "song", "night", "time",
    "great", "good", "bad", "terrible", "boring", "fun", "funny", "sad", "happy", "long",
    "short", "slow", "fast", "loved", "hated", "liked", "watch", "see", "and", "but", "not",
    "very", "really", "so", "too", "of", "to", "in", "with", "play", "act", "sing", "dance",
    "end", "un", ".", ",", "!", "?", "'",
]
PIECES = ["##ing", "##ed", "##s", "##er", "##ly", "##able", "##believ", "##y", "##ness"]

TOML = """\
# Tiny random model for the PyTorch parity test (tests/reference/make_parity_fixture.py).
[encoder]
hidden = 32
layers = 2
heads = 4
intermediate = 64
max_positions = 64
vocab_size = {vocab_size}
type_vocab_size = 2
layer_norm_eps = 1e-12
dropout = 0.1
attention_dropout = 0.1
seed = 1
tokenizer = "tokenizer.json"

[[task]]
name = "sentiment"
kind = "classification"
labels = ["neg", "pos", "neutral"]
gate = "scalar"
pooling = "cls"
head = {{ hidden = [16], activation = "gelu" }}
lambda = 1.0

[[task]]
name = "intensity"
kind = "regression"
outputs = 2
gate = "vector"
pooling = "mean"
head = {{ hidden = [], activation = "gelu" }}
lambda = 0.5

[[task]]
name = "pos"
kind = "token_classification"
labels = ["DT", "NN", "VB", "JJ", "PUNCT"]
gate = "scalar"
head = {{ hidden = [8], activation = "tanh" }}
lambda = 2.0

[[task]]
name = "topics"
kind = "multilabel"
labels = ["a", "b", "c"]
gate = "none"
pooling = "mean"
head = {{ hidden = [], activation = "gelu" }}
lambda = 1.0
"""

# Row by row: sentiment labelled on 0,1,2,4; intensity on 0,2,3; pos on 0,1,2,4; topics on 0,1,2,3.
# Words that split: "great!" (great !), "acting" (act ##ing), "slowly" (slow ##ly),
# "unbelievable" (un ##believ ##able), "singers" (pair text: sing ##er ##s); "xylophone" -> [UNK];
# "SAD" checks lowercasing with offsets into the original text.
BATCH = [
    {"text": "The movie was great!",
     "labels": {"sentiment": "pos", "intensity": [0.9, -0.2],
                "pos": ["DT", "NN", "VB", "JJ"], "topics": ["a"]}},
    {"text": "They loved the acting , but the plot was slowly boring .",
     "labels": {"sentiment": "neutral",
                "pos": ["NN", "VB", "DT", "NN", "PUNCT", "DT", "DT", "NN", "VB", "JJ", "JJ", "PUNCT"],
                "topics": ["a", "c"]}},
    {"text": "An unbelievable film", "text_pair": "I really liked the singers",
     "labels": {"sentiment": "pos", "intensity": [1.5, 0.3],
                "pos": ["DT", "JJ", "NN"], "topics": []}},
    {"text": "Boring xylophone music",
     "labels": {"intensity": [-1.0, 0.5], "topics": ["b"]}},
    {"text": "It is a SAD song .",
     "labels": {"sentiment": "neg", "pos": ["NN", "VB", "DT", "JJ", "NN", "PUNCT"]}},
]

BATCH_PARTIAL = [
    {"text": "The actors were funny",
     "labels": {"sentiment": "pos", "intensity": [0.4, 0.1], "pos": ["DT", "NN", "VB", "JJ"]}},
    {"text": "we hated the long film .", "text_pair": "it was too slow",
     "labels": {"sentiment": "neg", "intensity": [-0.7, 0.9]}},
    {"text": "Really unbelievable !", "labels": {}},
]


def make_tokenizer() -> Tokenizer:
    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS + PIECES)}
    assert len(vocab) == len(SPECIALS) + len(WORDS) + len(PIECES), "duplicate vocabulary entry"
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(SPECIALS)
    assert tok.get_vocab_size(with_added_tokens=True) == len(vocab)
    return tok


def random_weights(model: multitask.ReferenceModel) -> dict[str, torch.Tensor]:
    """Larger than BERT's init so the parity test is sensitive; rounded to f32."""
    gen = torch.Generator().manual_seed(SEED)
    out = {}
    for name, p in model.named_params().items():
        z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        if name.endswith("LayerNorm.weight"):
            w = 1.0 + 0.1 * z
        elif name.endswith(".bias"):
            w = 0.1 * z
        else:
            w = 0.2 * z
        out[name] = w.to(torch.float32).contiguous()
    return out


def write_jsonl(path: pathlib.Path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/parity"))
    out = pathlib.Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    tok = make_tokenizer()
    tok.save(str(out / "tokenizer.json"))
    (out / "taskgate.toml").write_text(TOML.format(vocab_size=tok.get_vocab_size(with_added_tokens=True)))

    # Build the module tree from the written config to get every parameter name and shape.
    encoder, tasks = multitask.parse_config(out / "taskgate.toml")
    skeleton = multitask.ReferenceModel(encoder, tasks, multitask.load_tokenizer(out / "tokenizer.json"), 0)
    save_file(random_weights(skeleton), str(out / "model.safetensors"))
    (out / "model.safetensors").chmod(0o644)

    write_jsonl(out / "batch.jsonl", BATCH)
    write_jsonl(out / "batch_partial.jsonl", BATCH_PARTIAL)

    # The expected dumps come from the files just written (weights re-read as f32).
    for batch, expected in (("batch.jsonl", "expected.safetensors"),
                            ("batch_partial.jsonl", "expected_partial.safetensors")):
        dump = multitask.run(out, out / batch, torch.float64)
        save_file(dump, str(out / expected))
        (out / expected).chmod(0o644)
        losses = {k: round(float(v), 6) for k, v in dump.items() if k.startswith("loss")}
        print(f"{out / expected}: input_ids {tuple(dump['input_ids'].shape)}, {losses}")


if __name__ == "__main__":
    main()
