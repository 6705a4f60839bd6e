#!/usr/bin/env python3
"""Checks a `taskgate export --format hf` directory with Hugging Face transformers itself:
AutoModel.from_pretrained and AutoTokenizer.from_pretrained must load it without a warning
about missing, unexpected or newly initialized weights; the tokenizer must give the token ids
taskgate's dump used; and last_hidden_state (eval mode, float64) must match the dump's
`hidden` within --tol on real tokens.

    python3 tests/reference/check_hf_export.py --export DIR --dump DUMP.safetensors \
        --batch batch.jsonl [--tol 1e-4]

DUMP is `taskgate dump --model DIR --batch batch.jsonl --out DUMP` (of the export or of the
model it came from). Prints one JSON line with what it measured; exits 1 when a check fails.
Run by tests/train_cli/export.rs when `import transformers` works.
"""
import argparse
import json
import logging
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

# Words in a transformers log record that mean weights were not loaded as they are.
BAD_WORDS = ("not initialized", "newly initialized", "not used", "unexpected", "missing")


class Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()

    records = Records()
    hf_logging.set_verbosity_warning()
    hf_logging.get_logger().addHandler(records)
    model = AutoModel.from_pretrained(args.export, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(args.export)
    bad = [m for m in records.messages if any(w in m.lower() for w in BAD_WORDS)]

    lines = [json.loads(l) for l in open(args.batch) if l.strip()]
    encoded = [
        tokenizer(l["text"], l["text_pair"]) if "text_pair" in l else tokenizer(l["text"])
        for l in lines
    ]
    width = max(len(e["input_ids"]) for e in encoded)
    ours_ids = np.array(
        [e["input_ids"] + [tokenizer.pad_token_id] * (width - len(e["input_ids"])) for e in encoded]
    )

    dump = load_file(args.dump)
    ids = dump["input_ids"].astype(np.int64)
    mask = dump["attention_mask"].astype(bool)
    same_ids = ours_ids.shape == ids.shape and bool((ours_ids == ids).all())

    model = model.to(torch.float64).eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids),
            token_type_ids=torch.tensor(dump["token_type_ids"].astype(np.int64)),
            attention_mask=torch.tensor(dump["attention_mask"].astype(np.int64)),
        ).last_hidden_state.numpy()
    hidden = dump["hidden"].astype(np.float64).reshape(out.shape)
    worst = float(np.abs(out - hidden)[mask].max())

    report = {
        "export": args.export,
        "warnings": bad,
        "tokenizer_ids_match": same_ids,
        "max_abs_diff_real_tokens": worst,
        "tol": args.tol,
        "layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
    }
    print(json.dumps(report))
    ok = not bad and same_ids and worst <= args.tol
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
