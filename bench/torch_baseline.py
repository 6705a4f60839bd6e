"""PyTorch baseline for `taskgate bench`: the same kernels (bench/suite.json) and the same
training step (BERT encoder + three gated task heads + AdamW), measured the same way, written
in the same JSON schema, so `taskgate bench compare` can put them side by side.

    python3 bench/torch_baseline.py kernels --json torch-kernels.json
    python3 bench/torch_baseline.py train --model minilm-l6 --batch 16 --seq 64 --json torch-train.json
    python3 bench/torch_baseline.py all --json torch.json          # both
    python3 bench/torch_baseline.py decode --model minilm-l2 --batch 8 --seq 32 --new-tokens 16

`decode` times text generation as `taskgate bench decode` does: a 2-layer decoder
(tests/reference/decoder.py's modules, random weights) over a random encoder output of
--batch x --seq, --new-tokens tokens per input (the end token never honoured), greedy and
beam 4, with the key/value cache and without it (each step re-running the prefixes); the
search is vectorized (argmax, top-k over beams x vocabulary), as PyTorch users write it.

PyTorch runs eagerly (no torch.compile) in float32 on the CPU with as many threads as the
machine has (or --threads), or on CUDA with --device cuda. Attention is Hugging Face's default
(scaled_dot_product_attention). Every measurement excludes warm-up runs and reports the
median and the minimum of --samples runs.
"""
import argparse
import json
import os
import pathlib
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent
SUITE = json.loads((ROOT / "suite.json").read_text())

# Encoder sizes shared with `taskgate bench train --model`.
MODELS = {
    "tiny": dict(hidden=128, layers=2, heads=4, intermediate=512),
    "minilm-l2": dict(hidden=384, layers=2, heads=12, intermediate=1536),
    "minilm-l6": dict(hidden=384, layers=6, heads=12, intermediate=1536),
    "bert-base": dict(hidden=768, layers=12, heads=12, intermediate=3072),
}
VOCAB = 30522


class Timer:
    def __init__(self, device):
        self.device = device

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def measure(self, fn, warmup, samples):
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times), min(times)


def result(suite, name, shape, median, minimum, samples, flops=None, bytes_=None, **extra):
    r = {
        "suite": suite, "name": name, "shape": shape, "median_ms": median * 1e3, "min_ms": minimum * 1e3,
        "samples": samples,
        "gflops": flops / median / 1e9 if flops else None,
        "gbps": bytes_ / median / 1e9 if bytes_ else None,
    }
    r.update(extra)
    return r


def kernels(args, device, timer):
    out = []

    def wanted(name, shape):
        return args.filter is None or args.filter in f"{name} {shape}"
    g = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device)

    for m, n, k, layout in SUITE["matmul"]:
        if not wanted("matmul", f"{m}x{n}x{k} {layout}"):
            continue
        a = rand(k, m) if layout == "tn" else rand(m, k)
        b = rand(n, k) if layout == "nt" else rand(k, n)
        if layout == "nn":
            fn = lambda a=a, b=b: a @ b
        elif layout == "nt":
            fn = lambda a=a, b=b: a @ b.t()
        else:
            fn = lambda a=a, b=b: a.t() @ b
        med, mn = timer.measure(fn, args.warmup, args.samples)
        out.append(result("kernels", "matmul", f"{m}x{n}x{k} {layout}", med, mn, args.samples, flops=2.0 * m * n * k))
        print(f"matmul {m}x{n}x{k} {layout}: {out[-1]['gflops']:.1f} GFLOP/s", flush=True)

    for bsz, heads, seq, dh in SUITE["attention"]:
        if not wanted("attention", f"b{bsz} h{heads} t{seq} d{dh}"):
            continue
        q, kk, v = (rand(bsz, heads, seq, dh).requires_grad_() for _ in range(3))
        mask = torch.zeros(bsz, 1, 1, seq, device=device)
        mask[:, :, :, seq - seq // 8:] = torch.finfo(torch.float32).min
        grad = rand(bsz, heads, seq, dh)
        fwd = lambda: F.scaled_dot_product_attention(q, kk, v, attn_mask=mask)

        def fwd_bwd():
            o = fwd()
            o.backward(grad)

        flops = 4.0 * bsz * heads * seq * seq * dh
        with torch.no_grad():
            med, mn = timer.measure(fwd, args.warmup, args.samples)
        out.append(result("kernels", "attention forward", f"b{bsz} h{heads} t{seq} d{dh}", med, mn, args.samples, flops=flops))
        med, mn = timer.measure(fwd_bwd, args.warmup, args.samples)
        out.append(result("kernels", "attention forward+backward", f"b{bsz} h{heads} t{seq} d{dh}", med, mn, args.samples, flops=3 * flops))
        print(f"attention t{seq}: {out[-2]['median_ms']:.1f} / {out[-1]['median_ms']:.1f} ms", flush=True)

    with torch.no_grad():
        for rows, width in SUITE["layernorm"]:
            if not wanted("layernorm", f"{rows}x{width}"):
                continue
            x, w, b = rand(rows, width), rand(width), rand(width)
            med, mn = timer.measure(lambda: F.layer_norm(x, (width,), w, b, 1e-12), args.warmup, args.samples)
            out.append(result("kernels", "layernorm", f"{rows}x{width}", med, mn, args.samples, bytes_=8.0 * rows * width))
        for n in SUITE["gelu"]:
            if not wanted("gelu", f"{n}"):
                continue
            x = rand(n)
            med, mn = timer.measure(lambda: F.gelu(x), args.warmup, args.samples)
            out.append(result("kernels", "gelu", f"{n}", med, mn, args.samples, bytes_=8.0 * n))

    def loss_case(name, rows, cols, fn):
        if not wanted(name, f"{rows}x{cols}"):
            return
        x = rand(rows, cols).requires_grad_()

        def run():
            x.grad = None
            fn(x).backward()

        med, mn = timer.measure(run, args.warmup, args.samples)
        out.append(result("kernels", name, f"{rows}x{cols}", med, mn, args.samples, bytes_=12.0 * rows * cols))

    for rows, classes in SUITE["cross_entropy"]:
        t = torch.randint(0, classes, (rows,), generator=g).to(device)
        loss_case("cross_entropy", rows, classes, lambda x, t=t: F.cross_entropy(x, t))
    for rows, vocab, hidden in SUITE["tied_output"]:
        if not wanted("tied_output", f"{rows}x{vocab}x{hidden}"):
            continue
        x = rand(rows, hidden).requires_grad_()
        emb = (rand(vocab, hidden) * 0.05).requires_grad_()
        t = torch.arange(rows, device=device) * 7919 % vocab

        def tied(x=x, emb=emb, t=t):
            x.grad = None
            emb.grad = None
            F.cross_entropy(x @ emb.t(), t).backward()

        med, mn = timer.measure(tied, args.warmup, args.samples)
        out.append(result("kernels", "tied_output", f"{rows}x{vocab}x{hidden}", med, mn, args.samples,
                          flops=6.0 * rows * vocab * hidden))
        print(f"tied_output {rows}x{vocab}x{hidden}: {out[-1]['median_ms']:.1f} ms", flush=True)
    for rows, outs in SUITE["bce"]:
        t = torch.randint(0, 2, (rows, outs), generator=g).float().to(device)
        loss_case("bce", rows, outs, lambda x, t=t: F.binary_cross_entropy_with_logits(x, t))
    for rows, outs in SUITE["mse"]:
        t = rand(rows, outs)
        loss_case("mse", rows, outs, lambda x, t=t: F.mse_loss(x, t))

    for n in SUITE["adamw"]:
        if not wanted("adamw", f"{n}"):
            continue
        p = torch.nn.Parameter(rand(n))
        p.grad = rand(n)
        opt = torch.optim.AdamW([p], lr=1e-4, foreach=True)
        med, mn = timer.measure(opt.step, args.warmup, args.samples)
        out.append(result("kernels", "adamw", f"{n}", med, mn, args.samples, bytes_=28.0 * n))
        print(f"adamw {n}: {out[-1]['median_ms']:.1f} ms", flush=True)
    return out


class GatedHead(torch.nn.Module):
    """Gate (scalar: d -> 1, vector: d -> d, or none), pooling, one linear layer."""

    def __init__(self, hidden, outputs, gate, pooling):
        super().__init__()
        self.gate = None if gate == "none" else torch.nn.Linear(hidden, 1 if gate == "scalar" else hidden)
        self.pooling = pooling
        self.head = torch.nn.Linear(hidden, outputs)

    def forward(self, h, mask):
        y = h if self.gate is None else torch.sigmoid(self.gate(h)) * h
        if self.pooling == "cls":
            y = y[:, 0]
        elif self.pooling == "mean":
            m = mask.unsqueeze(-1).to(y.dtype)
            y = (y * m).sum(1) / m.sum(1)
        return self.head(y)


def train(args, device, timer):
    from transformers import BertConfig, BertModel

    dims = MODELS[args.model]
    config = BertConfig(vocab_size=VOCAB, hidden_size=dims["hidden"], num_hidden_layers=dims["layers"],
                        num_attention_heads=dims["heads"], intermediate_size=dims["intermediate"],
                        max_position_embeddings=512, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)
    encoder = BertModel(config, add_pooling_layer=False).to(device)
    hidden = dims["hidden"]
    heads = torch.nn.ModuleDict({
        "classification": GatedHead(hidden, 2, "scalar", "cls"),
        "regression": GatedHead(hidden, 1, "vector", "mean"),
        "tokens": GatedHead(hidden, 10, "scalar", None),
    }).to(device)
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    b, t = args.batch, args.seq
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 21000, (b, t), generator=g).to(device)
    mask = torch.ones(b, t, dtype=torch.long, device=device)
    cls_t = torch.randint(0, 2, (b,), generator=g).to(device)
    reg_t = torch.rand(b, 1, generator=g).to(device)
    tok_t = torch.randint(0, 10, (b, t), generator=g).to(device)
    encoder.train()
    heads.train()

    def step():
        opt.zero_grad(set_to_none=True)
        h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = F.cross_entropy(heads["classification"](h, mask), cls_t)
        loss = loss + F.mse_loss(heads["regression"](h, mask), reg_t)
        loss = loss + F.cross_entropy(heads["tokens"](h, mask).reshape(-1, 10), tok_t.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    med, mn = timer.measure(step, args.warmup, args.samples)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "max_memory_allocated (CUDA)"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "peak RSS of the whole Python process"
    r = result("train", args.model, f"b{b} t{t}", med, mn, args.samples,
               tokens_per_s=b * t / med, peak_mem_mb=peak, peak_mem_kind=peak_kind)
    print(f"train {args.model} b{b} t{t}: {r['median_ms']:.0f} ms/step, {r['tokens_per_s']:.0f} tokens/s, "
          f"peak {peak:.0f} MiB ({peak_kind})", flush=True)
    return [r]


def decode(args, device, timer):
    """Generated tokens per second, greedy and beam 4, with and without the cache."""
    sys.path.insert(0, str(ROOT.parent / "tests" / "reference"))
    from decoder import DecoderConfig, DecoderModel

    m = MODELS[args.model]
    n, B, T = args.new_tokens, args.batch, args.seq
    cfg = DecoderConfig(vocab_size=VOCAB, hidden=m["hidden"], heads=m["heads"], layers=2,
                        intermediate=m["intermediate"], max_length=n)
    g = torch.Generator(device="cpu").manual_seed(0)
    model = DecoderModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    model.to(device)
    memory = torch.randn(B, T, m["hidden"], generator=g).to(device)
    mask = torch.ones(B, T, device=device)
    bos = 101

    def greedy(cached):
        if cached:
            cache = model.start_cache(memory, mask)
            last = torch.full((B,), bos, device=device)
            for _ in range(n):
                last = model.step(cache, last).argmax(-1)
            return
        seqs = torch.full((B, 1), bos, device=device)
        for _ in range(n):
            nxt = model(seqs, memory, mask)[:, -1].argmax(-1)
            seqs = torch.cat([seqs, nxt[:, None]], 1)

    def beam(cached, K=4):
        scores = torch.zeros(B, 1, device=device)
        if cached:
            cache = model.start_cache(memory, mask)
            last = torch.full((B,), bos, device=device)
        else:
            seqs = torch.full((B, 1), bos, device=device)
        for _ in range(n):
            k = scores.shape[1]
            if cached:
                logits = model.step(cache, last)
            else:
                logits = model(seqs, memory.repeat_interleave(k, 0), mask.repeat_interleave(k, 0))[:, -1]
            total = scores[:, :, None] + torch.log_softmax(logits, -1).view(B, k, VOCAB)
            scores, idx = total.view(B, -1).topk(K, dim=-1)
            rows = (torch.arange(B, device=device)[:, None] * k + idx // VOCAB).view(-1)
            tokens = (idx % VOCAB).view(-1)
            if cached:
                cache.select(rows.tolist())
                last = tokens
            else:
                seqs = torch.cat([seqs[rows], tokens[:, None]], 1)

    out = []
    print(f"{args.model} decoder 2 layers, batch {B}, input {T} tokens, {n} new tokens per input")
    with torch.no_grad():
        for search, fn in [("greedy", greedy), ("beam 4", beam)]:
            for cached in (True, False):
                med, mn = timer.measure(lambda: fn(cached), args.warmup, args.samples)
                cache = "kv cache" if cached else "none"
                out.append(result("decode", f"{search} {cache}", f"b{B} t{T} n{n}", med, mn,
                                  args.samples, tokens_per_s=B * n / med))
                print(f"{search:<8} {cache:<10} {med:>8.3f} s {B * n / med:>10.1f} tokens/s", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["kernels", "train", "all", "decode"])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--model", default="minilm-l6", choices=sorted(MODELS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=16, help="decode: tokens generated per input")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--filter", help='only the kernel cases whose "name shape" contains this text')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    timer = Timer(device)
    results = []
    if args.suite in ("kernels", "all"):
        results += kernels(args, device, timer)
    if args.suite in ("train", "all"):
        results += train(args, device, timer)
    if args.suite == "decode":
        results += decode(args, device, timer)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({args.threads} threads)"
    report = {
        "framework": f"pytorch {torch.__version__}",
        "device": name,
        "timing": "wall clock around synchronized runs",
        "results": results,
    }
    text = json.dumps(report, indent=1)
    if args.json:
        pathlib.Path(args.json).write_text(text)
        print(f"wrote {args.json}")
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
