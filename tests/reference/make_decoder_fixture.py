#!/usr/bin/env python3
"""Makes tests/fixtures/decoder/: a tiny seeded random text-generation decoder (decoder.py), a
teacher-forced batch with its logits, losses and gradients, and greedy / beam decodings, all
computed in float64 from the f32 values written to disk.

Run from the repository root:  python3 tests/reference/make_decoder_fixture.py [--out DIR]

Sizes: V = 61, d = 24, H = 4 (dh = 6), 2 layers, intermediate 40, max_length 9; B = 3 inputs,
memory Ts = 7 (mem_mask: row 0 full, row 1 two pads, row 2 four pads; padded memory rows hold
random values too, which must not matter), decoder Tt = 6 (rows 1 and 2 right-padded).
Special ids: PAD 0, UNK 1, BOS = [CLS] 2, EOS = [SEP] 3, MASK 4; other tokens are 5..60.

Writes
    weights.safetensors    every decoder parameter + `word_embeddings` (f32)
    expected.safetensors   memory [B,Ts,d], memory_mask (f32 0/1) [B,Ts], input_ids, labels
                           (int32 [B,Tt]; labels -100 on decoder padding), logits [B,Tt,V],
                           loss (label smoothing 0), loss_smoothed (0.1), and the gradients of
                           loss_smoothed: grad.<param> for every parameter (grad.word_embeddings
                           sums the input-embedding and output-projection parts) and grad.memory
    decode.json            greedy (max_new_tokens 8) and beam (K=3, α=1.0; K=2, α=0.6;
                           max_new_tokens 8) on the same weights and memory, with the per-step
                           minimum gaps (see decoder.py for the rules and what a gap is)

Weights: N(0, 0.2²) for linear weights and embeddings, LayerNorm weights 1 + 0.1·N(0,1), biases
0.1·N(0,1), drawn in parameter order from torch.Generator().manual_seed(SEED); then the memory
N(0,1) [B,Ts,d], then the target tokens. The EOS row of word_embeddings is then multiplied by
EOS_SCALE = 2.5: with plain random weights EOS is one token of 61 and is almost never chosen
within 8 steps, so no decoding would finish. A larger EOS row makes the EOS logit
x·E[EOS] larger in magnitude, so on inputs/positions where it is positive EOS wins; which
inputs finish early then depends on the memory. (EOS is never fed to the decoder in the
fixture's teacher-forced ids, only used as a label.)

SEED = 34 is the first seed from 0 upward (EOS_SCALE fixed) for which the script's assertions
(`problems`) hold: every gap that decides a decoding is > 1e-3 (so f32 cannot flip a choice);
greedy has a row that ends by EOS after 2 or more tokens but before max_new_tokens, and a row
that runs to max_new_tokens; each beam setting has an input that ends early with K finished
hypotheses and one that runs to max_new_tokens; some input gets its K-th finished hypothesis at
the last step (so its live beams are discarded, not added); some result mixes EOS-finished and
unfinished hypotheses. The script also asserts that each decoder layer
equals transformers' BertLayer (is_decoder, add_cross_attention, eager) with the same weights
to < 1e-10, and that cached decoding equals re-running the full prefix to < 1e-9.

Everything is seeded, so rerunning reproduces the same files.
"""
import argparse
import json
import math
import pathlib
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import decoder as dec  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = 34
EOS_SCALE = 2.5
MIN_GAP = 1e-3

CFG = dec.DecoderConfig(vocab_size=61, hidden=24, heads=4, layers=2, intermediate=40, max_length=9,
                        layer_norm_eps=1e-12)
PAD, BOS, EOS = 0, 2, 3
FIRST_WORD = 5
B, TS, TT = 3, 7, 6
MEM_LEN = [7, 5, 3]          # real memory positions per row
DEC_LEN = [6, 4, 3]          # real decoder positions per row (BOS + targets before EOS)
MAX_NEW = 8
BEAMS = [(3, 1.0), (2, 0.6)]
SMOOTHING = 0.1


def make_inputs(seed: int, eos_scale: float):
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in dec.parameter_shapes(CFG).items():
        z = torch.randn(shape, generator=gen, dtype=torch.float64)
        if name.endswith("LayerNorm.weight"):
            w = 1.0 + 0.1 * z
        elif name.endswith(".bias"):
            w = 0.1 * z
        else:
            w = 0.2 * z
        weights[name] = w
    weights["word_embeddings"][EOS] *= eos_scale
    weights = {k: v.to(torch.float32).contiguous() for k, v in weights.items()}

    memory = torch.randn(B, TS, CFG.hidden, generator=gen, dtype=torch.float64).to(torch.float32)
    memory_mask = torch.zeros(B, TS, dtype=torch.float32)
    for b, n in enumerate(MEM_LEN):
        memory_mask[b, :n] = 1.0

    input_ids = torch.full((B, TT), PAD, dtype=torch.int32)
    labels = torch.full((B, TT), dec.IGNORE, dtype=torch.int32)
    for b, n in enumerate(DEC_LEN):
        words = torch.randint(FIRST_WORD, CFG.vocab_size, (n - 1,), generator=gen).to(torch.int32)
        input_ids[b, 0] = BOS
        input_ids[b, 1:n] = words
        labels[b, :n - 1] = words
        labels[b, n - 1] = EOS
    return weights, memory.contiguous(), memory_mask, input_ids, labels


def build_model(weights) -> dec.DecoderModel:
    model = dec.DecoderModel(CFG).to(torch.float64)
    dec.load_weights(model, weights)
    return model


def check_against_bert_layer(model, memory, memory_mask, input_ids) -> float:
    """Each layer of ours vs transformers' BertLayer with the same weights, on the layer's real
    input, with Hugging Face's own causal extended mask and inverted encoder mask."""
    from transformers import BertConfig, BertModel
    from transformers.models.bert.modeling_bert import BertLayer, BertSelfAttention

    config = BertConfig(vocab_size=CFG.vocab_size, hidden_size=CFG.hidden,
                        num_hidden_layers=CFG.layers, num_attention_heads=CFG.heads,
                        intermediate_size=CFG.intermediate, hidden_act="gelu",
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        max_position_embeddings=CFG.max_length, layer_norm_eps=CFG.layer_norm_eps,
                        is_decoder=True, add_cross_attention=True, attn_implementation="eager")
    # Only for its mask helpers (what BertModel.forward passes its layers).
    helper = BertModel(config, add_pooling_layer=False).to(torch.float64)
    ids = input_ids.long()
    ext = helper.get_extended_attention_mask(torch.ones_like(ids), ids.shape)   # [B,1,Tt,Tt] causal
    enc_ext = helper.invert_attention_mask(memory_mask.to(torch.float64))      # [B,1,1,Ts]
    assert ext.shape == (B, 1, TT, TT) and enc_ext.shape == (B, 1, 1, TS)
    future = torch.ones(TT, TT, dtype=torch.bool).triu(1)
    assert bool(((ext < -1e300) == future).all()) and bool((ext[:, :, ~future] == 0).all())

    worst = 0.0
    with torch.no_grad():
        x = model.embed(ids)
        for n, ours in enumerate(model.decoder.layer):
            hf = BertLayer(config, layer_idx=n).to(torch.float64).eval()
            assert type(hf.attention.self) is BertSelfAttention      # eager
            assert type(hf.crossattention.self) is BertSelfAttention
            hf.load_state_dict(ours.state_dict(), strict=True)
            want = hf(x, attention_mask=ext, encoder_hidden_states=memory,
                      encoder_attention_mask=enc_ext)[0]
            got = ours(x, memory, memory_mask)
            diff = float((want - got).abs().max())
            print(f"layer {n}: ours vs transformers BertLayer max abs diff {diff:.3e}")
            worst = max(worst, diff)
            x = got
    assert worst < 1e-10, worst
    return worst


def decode_all(model, memory, memory_mask, check_cache: bool):
    g = dec.greedy(model, memory, memory_mask, MAX_NEW, BOS, EOS, PAD, check_cache=check_cache)
    beams = [dec.beam(model, memory, memory_mask, k, a, MAX_NEW, BOS, EOS, check_cache=check_cache)
             for k, a in BEAMS]
    return g, beams


def problems(g, beams) -> list[str]:
    out = []
    gaps = g["step_min_gap"] + [x for r in beams for x in r["step_min_gap"] + r["final_min_gap"]]
    if min(gaps) <= MIN_GAP:
        out.append(f"a gap {min(gaps):.2e} <= {MIN_GAP}")
    lens = [len([t for t in row if t != PAD]) for row in g["tokens"]]
    if not any(e and 2 <= n < MAX_NEW for e, n in zip(g["ended"], lens)):
        out.append("greedy: no row ends by EOS after 2 or more tokens and before max_new_tokens")
    if all(g["ended"]):
        out.append("greedy: no row runs to max_new_tokens")
    hyps = [(r["steps"][i], h) for r in beams for i, h in enumerate(r["hypotheses"])]
    if not any(s == MAX_NEW and all(x["tokens"][-1] == EOS for x in h) for s, h in hyps):
        out.append("beam: no input gets its K-th finished hypothesis at the last step")
    if not any(len({x["tokens"][-1] == EOS for x in h}) == 2 for _, h in hyps):
        out.append("beam: no result mixes finished and unfinished hypotheses")
    for (k, a), r in zip(BEAMS, beams):
        if not any(r["early"]):
            out.append(f"beam K={k}: no input ends early")
        if not any(s == MAX_NEW for s in r["steps"]):
            out.append(f"beam K={k}: no input runs to max_new_tokens")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/decoder"))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    out = pathlib.Path(args.out)

    weights, memory, memory_mask, input_ids, labels = make_inputs(args.seed, EOS_SCALE)
    model = build_model(weights)
    mem64 = memory.to(torch.float64)

    check_against_bert_layer(model, mem64, memory_mask, input_ids)

    # Teacher-forced forward / backward.
    mem = mem64.clone().requires_grad_(True)
    logits = model(input_ids.long(), mem, memory_mask)
    loss = dec.token_loss(logits, labels, 0.0)
    loss_smoothed = dec.token_loss(logits, labels, SMOOTHING)
    params = model.named_params()
    grads = torch.autograd.grad(loss_smoothed, list(params.values()) + [mem])
    assert float(grads[-1][1, MEM_LEN[1]:].abs().max()) == 0.0      # padded memory: no gradient

    def f32(t):
        return t.detach().to(torch.float32).contiguous()

    expected = {"memory": memory, "memory_mask": memory_mask.contiguous(),
                "input_ids": input_ids.contiguous(), "labels": labels.contiguous(),
                "logits": f32(logits), "loss": f32(loss), "loss_smoothed": f32(loss_smoothed),
                "grad.memory": f32(grads[-1])}
    for name, gr in zip(params, grads[:-1]):
        expected[f"grad.{name}"] = f32(gr)

    # Decoding, with the cache checked against full re-runs.
    g, beams = decode_all(model, mem64, memory_mask, check_cache=True)
    cache_diff = max([g["cache_max_diff"]] + [r["cache_max_diff"] for r in beams])
    print(f"cached vs full-prefix logits: max abs diff {cache_diff:.3e}")
    assert cache_diff < 1e-9, cache_diff
    bad = problems(g, beams)
    assert not bad, f"seed {args.seed}: {bad}"

    doc = {
        "seed": args.seed, "eos_scale": EOS_SCALE, "bos": BOS, "eos": EOS, "pad": PAD,
        "max_new_tokens": MAX_NEW, "min_gap_required": MIN_GAP,
        "greedy": {"tokens": g["tokens"], "ended": g["ended"], "steps": g["steps"],
                   "step_min_gap": g["step_min_gap"]},
        "beam": [{"beam_size": k, "length_penalty": a, "max_new_tokens": MAX_NEW,
                  "hypotheses": r["hypotheses"], "steps": r["steps"], "early": r["early"],
                  "step_min_gap": r["step_min_gap"], "final_min_gap": r["final_min_gap"]}
                 for (k, a), r in zip(BEAMS, beams)],
    }

    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "weights.safetensors"))
    save_file(expected, str(out / "expected.safetensors"))
    (out / "decode.json").write_text(json.dumps(doc, indent=1) + "\n")
    for f in ("weights.safetensors", "expected.safetensors", "decode.json"):
        (out / f).chmod(0o644)

    print(f"loss {float(loss):.6f}, loss_smoothed {float(loss_smoothed):.6f}")
    print(f"greedy: {g['tokens']} ended {g['ended']}, min gap {min(g['step_min_gap']):.4f}")
    for (k, a), r in zip(BEAMS, beams):
        print(f"beam K={k} alpha={a}: steps {r['steps']}, min step gap {min(r['step_min_gap']):.4f}, "
              f"min final gap {min(r['final_min_gap']):.4f}")
        for i, hs in enumerate(r["hypotheses"]):
            print(f"  input {i}: " + "; ".join(f"{h['tokens']} {h['score']:.4f}" for h in hs))


if __name__ == "__main__":
    main()
