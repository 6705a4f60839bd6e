#!/usr/bin/env python3
"""Makes tests/fixtures/minilm/: the encoder output of the real all-MiniLM-L6-v2 weights on a few
short sentences, computed by Hugging Face BertModel (eager attention, float64, eval mode).
taskgate's encoder, loaded from the same checkpoint, must reproduce `hidden`.

Run from the repository root:

    python3 tests/reference/make_minilm_fixture.py [--model models/all-MiniLM-L6-v2] [--out tests/fixtures/minilm]

--model is a directory with config.json, model.safetensors and tokenizer.json (the Hugging Face
sentence-transformers/all-MiniLM-L6-v2 files). Writes
    sentences.jsonl        one {"text": ..., "text_pair"?: ...} per line
    expected.safetensors   input_ids, token_type_ids, attention_mask (int32 [B,T]),
                           hidden (f32 [B,T,384], every position including padding)
"""
import argparse
import json
import pathlib

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

ROOT = pathlib.Path(__file__).resolve().parents[2]

SENTENCES = [
    {"text": "A man is playing a guitar."},
    {"text": "Tokenization splits unbelievable words."},
    {"text": "Where is the station?", "text_pair": "It is near the river."},
    {"text": "Cats sleep."},
]

IGNORED = ("embeddings.position_ids", "embeddings.token_type_ids")  # buffers some checkpoints carry


def load_bert(model_dir: pathlib.Path) -> BertModel:
    config = BertConfig.from_json_file(str(model_dir / "config.json"))
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0
    config._attn_implementation = "eager"
    model = BertModel(config, add_pooling_layer=False)
    state = load_file(str(model_dir / "model.safetensors"))
    state = {(k[5:] if k.startswith("bert.") else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k not in IGNORED}
    expected = {k for k, _ in model.named_parameters()}
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise SystemExit(f"{model_dir}/model.safetensors: missing {missing}, unexpected {extra}")
    model.load_state_dict(state, strict=False)  # strictness checked above (buffers are not in `state`)
    assert config._attn_implementation == "eager" and model.config._attn_implementation == "eager"
    return model.to(torch.float64).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/all-MiniLM-L6-v2"))
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/minilm"))
    args = ap.parse_args()
    model_dir, out = pathlib.Path(args.model), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()      # the file has Fixed(128) padding and truncation baked in
    tok.no_truncation()
    pad_id = tok.token_to_id("[PAD]")
    encs = [tok.encode(s["text"], s["text_pair"]) if "text_pair" in s else tok.encode(s["text"])
            for s in SENTENCES]
    B, T = len(encs), max(len(e.ids) for e in encs)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((B, T), dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    for b, e in enumerate(encs):
        n = len(e.ids)
        input_ids[b, :n] = torch.tensor(e.ids)
        token_type_ids[b, :n] = torch.tensor(e.type_ids)
        attention_mask[b, :n] = 1
        print(b, " ".join(f"{t}:{i}" for t, i in zip(e.tokens, e.ids)))

    model = load_bert(model_dir)
    with torch.no_grad():
        hidden = model(input_ids=input_ids, token_type_ids=token_type_ids,
                       attention_mask=attention_mask).last_hidden_state

    with open(out / "sentences.jsonl", "w", encoding="utf-8") as f:
        for s in SENTENCES:
            f.write(json.dumps(s) + "\n")
    save_file({
        "input_ids": input_ids.to(torch.int32).contiguous(),
        "token_type_ids": token_type_ids.to(torch.int32).contiguous(),
        "attention_mask": attention_mask.to(torch.int32).contiguous(),
        "hidden": hidden.to(torch.float32).contiguous(),
    }, str(out / "expected.safetensors"))
    (out / "expected.safetensors").chmod(0o644)
    print(f"wrote {out}/expected.safetensors: B={B} T={T} hidden {tuple(hidden.shape)}")


if __name__ == "__main__":
    main()
