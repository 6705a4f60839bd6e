#!/usr/bin/env python3
"""PyTorch reference implementation of a taskgate multi-task model.

The encoder is Hugging Face `transformers.BertModel(config, add_pooling_layer=False)` with
eager attention and every dropout probability 0; each task adds an optional sigmoid gate, a
pooling step (sequence-level kinds) and an MLP head. This module reads taskgate's own formats
(a model directory with `taskgate.toml`, `model.safetensors`, `tokenizer.json`, and batch
JSONL files) and produces the same dump that `taskgate dump` writes, so the two can be
compared with `compare_dumps.py`.

CLI (run from anywhere):

    python3 tests/reference/multitask.py --model DIR --batch FILE.jsonl --out FILE.safetensors \
        [--dtype float64|float32]

Computation is float64 by default (the f32 weights are promoted); the dump is written as f32
(int32 for the token tensors).

Library use:

    model = load_model(DIR, dtype=torch.float64)
    batch = collate(model, read_jsonl(FILE))
    dump = forward_backward(model, batch)        # dict name -> tensor, already f32/int32
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
import sys
import tomllib
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

KINDS = ("classification", "multilabel", "regression", "token_classification")
SEQUENCE_KINDS = ("classification", "multilabel", "regression")
GATES = ("scalar", "vector", "none")
POOLINGS = ("cls", "mean")
ACTIVATIONS = ("gelu", "tanh")
ENCODER_KEYS = ("hidden", "layers", "heads", "intermediate", "max_positions", "vocab_size",
                "type_vocab_size", "layer_norm_eps", "dropout", "attention_dropout", "seed",
                "tokenizer", "max_length")
TASK_KEYS = ("name", "kind", "labels", "outputs", "gate", "pooling", "head", "lambda")
IGNORE = -100


class ConfigError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# taskgate.toml
# --------------------------------------------------------------------------------------------

@dataclass
class TaskSpec:
    name: str
    kind: str
    labels: list[str]            # empty for regression
    outputs: int                 # number of head outputs (labels or `outputs`)
    gate: str
    pooling: str | None          # None for token_classification
    hidden: list[int]
    activation: str
    lam: float

    @property
    def out_dim(self) -> int:
        return self.outputs


@dataclass
class EncoderSpec:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    vocab_size: int
    type_vocab_size: int
    layer_norm_eps: float
    tokenizer: str
    max_length: int = 0
    extra: dict = field(default_factory=dict)


def _require(table: dict, key: str, where: str):
    if key not in table:
        raise ConfigError(f"{where}: missing key `{key}`")
    return table[key]


def _int(value, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _num(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def parse_config(path: pathlib.Path) -> tuple[EncoderSpec, list[TaskSpec]]:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    for key in doc:
        if key not in ("encoder", "task"):
            print(f"warning: {path}: ignoring top-level key `{key}`", file=sys.stderr)
    enc = _require(doc, "encoder", str(path))
    for key in enc:
        if key not in ENCODER_KEYS:
            print(f"warning: {path}: [encoder] ignoring unknown key `{key}`", file=sys.stderr)
    w = f"{path} [encoder]"
    encoder = EncoderSpec(
        hidden=_int(_require(enc, "hidden", w), w + ".hidden"),
        layers=_int(_require(enc, "layers", w), w + ".layers"),
        heads=_int(_require(enc, "heads", w), w + ".heads"),
        intermediate=_int(_require(enc, "intermediate", w), w + ".intermediate"),
        max_positions=_int(_require(enc, "max_positions", w), w + ".max_positions"),
        vocab_size=_int(_require(enc, "vocab_size", w), w + ".vocab_size"),
        type_vocab_size=_int(_require(enc, "type_vocab_size", w), w + ".type_vocab_size"),
        layer_norm_eps=_num(_require(enc, "layer_norm_eps", w), w + ".layer_norm_eps"),
        tokenizer=str(_require(enc, "tokenizer", w)),
        max_length=_int(enc.get("max_length", enc.get("max_positions", 1)), w + ".max_length"),
        extra={k: enc[k] for k in ("dropout", "attention_dropout", "seed") if k in enc},
    )
    if encoder.hidden % encoder.heads != 0:
        raise ConfigError(f"{w}: hidden {encoder.hidden} is not a multiple of heads {encoder.heads}")

    raw_tasks = doc.get("task", [])
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise ConfigError(f"{path}: at least one [[task]] is required")
    tasks: list[TaskSpec] = []
    seen = set()
    for i, t in enumerate(raw_tasks):
        w = f"{path} [[task]] #{i}"
        for key in t:
            if key not in TASK_KEYS:
                print(f"warning: {w}: ignoring unknown key `{key}`", file=sys.stderr)
        name = _require(t, "name", w)
        if not isinstance(name, str) or not name or "." in name or name in seen:
            raise ConfigError(f"{w}: task name must be a unique non-empty string without '.', got {name!r}")
        seen.add(name)
        w = f"{path} task `{name}`"
        kind = _require(t, "kind", w)
        if kind not in KINDS:
            raise ConfigError(f"{w}: kind must be one of {KINDS}, got {kind!r}")
        if kind == "regression":
            labels = []
            outputs = _int(t.get("outputs", 1), w + ".outputs")
            if "labels" in t:
                raise ConfigError(f"{w}: regression tasks take `outputs`, not `labels`")
        else:
            labels = _require(t, "labels", w)
            if (not isinstance(labels, list) or not labels
                    or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels)):
                raise ConfigError(f"{w}: labels must be a non-empty list of distinct strings")
            if "outputs" in t:
                raise ConfigError(f"{w}: only regression tasks take `outputs`")
            outputs = len(labels)
        gate = _require(t, "gate", w)
        if gate not in GATES:
            raise ConfigError(f"{w}: gate must be one of {GATES}, got {gate!r}")
        if kind in SEQUENCE_KINDS:
            pooling = _require(t, "pooling", w)
            if pooling not in POOLINGS:
                raise ConfigError(f"{w}: pooling must be one of {POOLINGS}, got {pooling!r}")
        else:
            pooling = None
            if "pooling" in t:
                print(f"warning: {w}: token_classification ignores `pooling`", file=sys.stderr)
        head = _require(t, "head", w)
        hidden = _require(head, "hidden", w + ".head")
        if not isinstance(hidden, list):
            raise ConfigError(f"{w}: head.hidden must be a list of sizes")
        hidden = [_int(h, w + ".head.hidden") for h in hidden]
        activation = _require(head, "activation", w + ".head")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"{w}: head.activation must be one of {ACTIVATIONS}, got {activation!r}")
        lam = _num(_require(t, "lambda", w), w + ".lambda")
        tasks.append(TaskSpec(name, kind, list(labels), outputs, gate, pooling, hidden, activation, lam))
    return encoder, tasks


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

class TaskModule(nn.Module):
    def __init__(self, spec: TaskSpec, d: int):
        super().__init__()
        self.spec = spec
        if spec.gate == "scalar":
            self.gate = nn.Linear(d, 1)
        elif spec.gate == "vector":
            self.gate = nn.Linear(d, d)
        else:
            self.gate = None
        dims = [d] + spec.hidden + [spec.out_dim]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, h: torch.Tensor, mask: torch.Tensor):
        """h [B,T,d], mask [B,T] (1 = real token). Returns (logits, gate or None)."""
        if self.gate is not None:
            g = torch.sigmoid(self.gate(h))           # [B,T,1] or [B,T,d]
            y = g * h
        else:
            g = None
            y = h
        if self.spec.kind in SEQUENCE_KINDS:
            if self.spec.pooling == "cls":
                x = y[:, 0]
            else:
                m = mask.to(y.dtype).unsqueeze(-1)     # [B,T,1]
                x = (m * y).sum(dim=1) / m.sum(dim=1)
        else:
            x = y
        for k, layer in enumerate(self.head):
            x = layer(x)
            if k + 1 < len(self.head):
                x = F.gelu(x, approximate="none") if self.spec.activation == "gelu" else torch.tanh(x)
        return x, g


class ReferenceModel(nn.Module):
    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec], tokenizer: Tokenizer, pad_id: int):
        super().__init__()
        self.encoder_spec = encoder
        self.task_specs = tasks
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        config = BertConfig(
            vocab_size=encoder.vocab_size,
            hidden_size=encoder.hidden,
            num_hidden_layers=encoder.layers,
            num_attention_heads=encoder.heads,
            intermediate_size=encoder.intermediate,
            hidden_act="gelu",
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            max_position_embeddings=encoder.max_positions,
            type_vocab_size=encoder.type_vocab_size,
            layer_norm_eps=encoder.layer_norm_eps,
            pad_token_id=pad_id,
            attn_implementation="eager",
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.tasks = nn.ModuleDict({t.name: TaskModule(t, encoder.hidden) for t in tasks})
        self.eval()

    def named_params(self) -> dict[str, nn.Parameter]:
        """taskgate parameter names -> parameters (encoder names carry no prefix)."""
        out = {n: p for n, p in self.bert.named_parameters()}
        for n, p in self.tasks.named_parameters():
            out[f"tasks.{n}"] = p
        return out

    def forward(self, input_ids, token_type_ids, attention_mask):
        h = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                      attention_mask=attention_mask).last_hidden_state
        logits, gates = {}, {}
        for spec in self.task_specs:
            lg, g = self.tasks[spec.name](h, attention_mask)
            logits[spec.name] = lg
            if g is not None:
                gates[spec.name] = g
        return h, logits, gates


def load_tokenizer(path: pathlib.Path, max_length: int | None = None) -> Tokenizer:
    """Padding off; truncation longest-first to `max_length` (as taskgate) when given."""
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    if max_length:
        tok.enable_truncation(max_length, strategy="longest_first", direction="right")
    return tok


def load_model(model_dir, dtype=torch.float64) -> ReferenceModel:
    """Builds the reference model from a taskgate model directory and loads its weights
    strictly (every name present, no extra names, exact shapes, f32 on disk)."""
    model_dir = pathlib.Path(model_dir)
    encoder, tasks = parse_config(model_dir / "taskgate.toml")
    tokenizer = load_tokenizer(model_dir / encoder.tokenizer, encoder.max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    if pad_id is None:
        raise ConfigError("tokenizer has no [PAD] token")
    if tokenizer.get_vocab_size(with_added_tokens=True) > encoder.vocab_size:
        raise ConfigError(f"tokenizer vocabulary ({tokenizer.get_vocab_size(with_added_tokens=True)}) "
                          f"is larger than vocab_size ({encoder.vocab_size})")
    model = ReferenceModel(encoder, tasks, tokenizer, pad_id)
    params = model.named_params()
    weights_path = model_dir / "model.safetensors"
    with safe_open(str(weights_path), framework="pt") as f:
        names = set(f.keys())
        missing = sorted(set(params) - names)
        extra = sorted(names - set(params))
        if missing or extra:
            raise ConfigError(f"{weights_path}: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for name, p in params.items():
                t = f.get_tensor(name)
                if t.dtype != torch.float32:
                    raise ConfigError(f"{weights_path}: `{name}` is {t.dtype}, expected float32")
                if tuple(t.shape) != tuple(p.shape):
                    raise ConfigError(f"{weights_path}: `{name}` has shape {tuple(t.shape)}, "
                                      f"expected {tuple(p.shape)}")
                p.copy_(t)
    model.to(dtype)
    return model


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------

def read_jsonl(path) -> list[dict]:
    examples = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            if not isinstance(ex, dict) or not isinstance(ex.get("text"), str):
                raise ValueError(f"{path}:{lineno}: each line must be an object with a string `text`")
            if "text_pair" in ex and ex["text_pair"] is not None and not isinstance(ex["text_pair"], str):
                raise ValueError(f"{path}:{lineno}: `text_pair` must be a string")
            if not isinstance(ex.get("labels", {}), dict):
                raise ValueError(f"{path}:{lineno}: `labels` must be an object")
            examples.append(ex)
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples


WORD_RE = re.compile(r"\S+")


def token_tags(encoding, text: str, tags: list[int]) -> list[int]:
    """Per-token tag index: the first token of each whitespace word of `text` gets the word's
    tag, every other token gets -100."""
    words = [(m.start(), m.end()) for m in WORD_RE.finditer(text)]
    assert len(words) == len(tags)
    out = [IGNORE] * len(encoding.ids)
    taken = set()
    for i, (seq, special, (start, _end)) in enumerate(zip(encoding.sequence_ids,
                                                         encoding.special_tokens_mask,
                                                         encoding.offsets)):
        if seq != 0 or special:
            continue
        word = next((w for w, (s, e) in enumerate(words) if s <= start < e), None)
        if word is None:
            raise ValueError(f"token {i} (offset {start}) of {text!r} lies in no whitespace word")
        if word not in taken:
            taken.add(word)
            out[i] = tags[word]
    return out


def collate(model: ReferenceModel, examples: list[dict]) -> dict:
    """Tokenizes and pads a list of JSONL examples. Returns torch tensors:
    input_ids/token_type_ids/attention_mask long [B,T] and `targets`: task -> dict."""
    tok = model.tokenizer
    max_len = model.encoder_spec.max_length
    specs = {t.name: t for t in model.task_specs}
    for i, ex in enumerate(examples):
        for name in ex.get("labels", {}):
            if name not in specs:
                raise ValueError(f"example {i}: unknown task `{name}` in labels")
    encs = []
    for ex in examples:
        pair = ex.get("text_pair")
        enc = tok.encode(ex["text"], pair) if pair is not None else tok.encode(ex["text"])
        encs.append(enc)
    lengths = [min(len(e.ids), max_len) for e in encs]
    B, T = len(examples), max(lengths)
    input_ids = torch.full((B, T), model.pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((B, T), dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    for b, (enc, n) in enumerate(zip(encs, lengths)):
        input_ids[b, :n] = torch.tensor(enc.ids[:n])
        token_type_ids[b, :n] = torch.tensor(enc.type_ids[:n])
        attention_mask[b, :n] = 1
    if int(input_ids.max()) >= model.encoder_spec.vocab_size:
        raise ValueError("token id outside the embedding table")
    if int(token_type_ids.max()) >= model.encoder_spec.type_vocab_size:
        raise ValueError("token type id outside the type embedding table")

    targets = {}
    for spec in model.task_specs:
        index = {l: i for i, l in enumerate(spec.labels)}
        rows = torch.zeros(B, dtype=torch.bool)

        def label_index(value, b):
            if not isinstance(value, str) or value not in index:
                raise ValueError(f"example {b}: task `{spec.name}`: unknown label {value!r}")
            return index[value]

        if spec.kind == "classification":
            y = torch.full((B,), IGNORE, dtype=torch.long)
        elif spec.kind == "multilabel":
            y = torch.zeros((B, spec.out_dim), dtype=torch.float64)
        elif spec.kind == "regression":
            y = torch.zeros((B, spec.out_dim), dtype=torch.float64)
        else:
            y = torch.full((B, T), IGNORE, dtype=torch.long)
        for b, ex in enumerate(examples):
            labels = ex.get("labels", {})
            if spec.name not in labels:
                continue
            v = labels[spec.name]
            rows[b] = True
            if spec.kind == "classification":
                y[b] = label_index(v, b)
            elif spec.kind == "multilabel":
                if not isinstance(v, list):
                    raise ValueError(f"example {b}: task `{spec.name}`: expected a list of labels")
                idx = [label_index(x, b) for x in v]
                if len(set(idx)) != len(idx):
                    raise ValueError(f"example {b}: task `{spec.name}`: repeated label in {v!r}")
                y[b, idx] = 1.0
            elif spec.kind == "regression":
                if not isinstance(v, list) and spec.out_dim != 1:
                    raise ValueError(f"example {b}: task `{spec.name}`: expected a list of {spec.out_dim} numbers")
                vals = v if isinstance(v, list) else [v]
                if len(vals) != spec.out_dim:
                    raise ValueError(f"example {b}: task `{spec.name}`: expected {spec.out_dim} numbers, got {len(vals)}")
                y[b] = torch.tensor([_num(x, f"example {b}: task `{spec.name}`") for x in vals], dtype=torch.float64)
            else:
                words = examples[b]["text"].split()
                if not isinstance(v, list) or len(v) != len(words):
                    raise ValueError(f"example {b}: task `{spec.name}`: {len(v) if isinstance(v, list) else v!r} "
                                     f"tags for {len(words)} words")
                tags = token_tags(encs[b], examples[b]["text"], [label_index(x, b) for x in v])
                y[b, :lengths[b]] = torch.tensor(tags[:lengths[b]])
        targets[spec.name] = {"y": y, "rows": rows}
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": attention_mask, "targets": targets}


# --------------------------------------------------------------------------------------------
# Forward + backward
# --------------------------------------------------------------------------------------------

def task_loss(spec: TaskSpec, logits: torch.Tensor, target: dict) -> torch.Tensor | None:
    """Mean loss over the labelled rows/tokens, or None when nothing is labelled."""
    y, rows = target["y"], target["rows"]
    if spec.kind == "classification":
        if not bool((y != IGNORE).any()):
            return None
        return F.cross_entropy(logits, y, ignore_index=IGNORE)
    if spec.kind == "token_classification":
        if not bool((y != IGNORE).any()):
            return None
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
    if not bool(rows.any()):
        return None
    idx = rows.nonzero().squeeze(1)
    t = y[idx].to(logits.dtype)
    if spec.kind == "multilabel":
        return F.binary_cross_entropy_with_logits(logits[idx], t)
    return F.mse_loss(logits[idx], t)


def forward_backward(model: ReferenceModel, batch: dict) -> dict[str, torch.Tensor]:
    """Runs forward and backward; returns the dump (f32 floats, int32 token tensors)."""
    params = model.named_params()
    for p in params.values():
        p.grad = None
    dtype = next(iter(params.values())).dtype
    h, logits, gates = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    losses = {}
    total = torch.zeros((), dtype=dtype)
    for spec in model.task_specs:
        l = task_loss(spec, logits[spec.name], batch["targets"][spec.name])
        if l is None:
            losses[spec.name] = torch.zeros((), dtype=dtype)
        else:
            losses[spec.name] = l
            total = total + spec.lam * l
    if total.requires_grad:
        total.backward()

    def f32(t):
        return t.detach().to(torch.float32).contiguous()

    dump = {
        "input_ids": batch["input_ids"].to(torch.int32).contiguous(),
        "token_type_ids": batch["token_type_ids"].to(torch.int32).contiguous(),
        "attention_mask": batch["attention_mask"].to(torch.int32).contiguous(),
        "hidden": f32(h),
        "loss": f32(total),
    }
    for spec in model.task_specs:
        dump[f"logits.{spec.name}"] = f32(logits[spec.name])
        dump[f"loss.{spec.name}"] = f32(losses[spec.name])
        if spec.name in gates:
            g = gates[spec.name]
            dump[f"gate.{spec.name}"] = f32(g.squeeze(-1) if spec.gate == "scalar" else g)
    for name, p in params.items():
        dump[f"grad.{name}"] = f32(p.grad if p.grad is not None else torch.zeros_like(p))
    return dump


def run(model_dir, batch_path, dtype=torch.float64) -> dict[str, torch.Tensor]:
    model = load_model(model_dir, dtype=dtype)
    batch = collate(model, read_jsonl(batch_path))
    return forward_backward(model, batch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="taskgate model directory")
    ap.add_argument("--batch", required=True, help="batch JSONL file")
    ap.add_argument("--out", required=True, help="output .safetensors dump")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="compute precision (the dump is always f32)")
    args = ap.parse_args(argv)
    dump = run(args.model, args.batch, getattr(torch, args.dtype))
    save_file(dump, args.out)
    losses = ", ".join(f"{k[5:]}={float(v):.6g}" for k, v in dump.items() if k.startswith("loss."))
    print(f"wrote {args.out}: {len(dump)} tensors, B={dump['input_ids'].shape[0]} "
          f"T={dump['input_ids'].shape[1]}, loss={float(dump['loss']):.6g} ({losses})")


if __name__ == "__main__":
    main()
