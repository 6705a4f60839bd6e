#!/usr/bin/env python3
"""Writes tests/fixtures/hf_export/bert_model_keys.json: the state-dict names and shapes of a
Hugging Face BertModel with 2 layers (hidden 16, 2 heads, intermediate 32, 32 positions, 77
tokens: the sizes of tests/train_cli's tiny model), and which of them are persistent buffers
rather than weights. `taskgate export --format hf` must write exactly its weights, so that
transformers loads the export with nothing missing and nothing unexpected; the test checks
that in CI, where transformers is not installed.

    python3 tests/reference/make_hf_export_fixture.py
"""
import json
import pathlib

from transformers import BertConfig, BertModel

ROOT = pathlib.Path(__file__).resolve().parents[2]

config = BertConfig(
    vocab_size=77,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=32,
)
model = BertModel(config)
weights = {name: list(p.shape) for name, p in model.named_parameters()}
buffers = sorted(name for name, _ in model.named_buffers())
persistent = sorted(set(model.state_dict()) - set(weights))
out = ROOT / "tests/fixtures/hf_export/bert_model_keys.json"
out.write_text(
    json.dumps({"weights": weights, "persistent_buffers": persistent, "buffers": buffers}, indent=1)
    + "\n"
)
print(f"wrote {out}: {len(weights)} weights, persistent buffers {persistent}")
