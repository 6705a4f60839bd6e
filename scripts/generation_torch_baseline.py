#!/usr/bin/env python3
"""Generation quality, taskgate against PyTorch trained the same way, on the test split.

    python3 scripts/generation_torch_baseline.py CONFIG.toml [--seeds 1 2] [--out runs/genbase]
        [--threads N] [--skip-taskgate] [--skip-torch] [--torch-mask-seed N]

CONFIG's tasks must all be generation tasks. For each seed S (written into every `seed =` line
of a copy of CONFIG, its data paths made absolute):

  taskgate   `taskgate train` then `taskgate eval --split test --json` (its best checkpoint:
             the highest dev exact match; with `eval_every = 0`, the last step).
  PyTorch    the same model: the initial weights `taskgate init` writes for that config (so the
             same pretrained encoder, warm-started decoder and fresh gate/cross-attention draws),
             transformers' BertModel (eager attention) + per task its gate and a stack of
             transformers' BertLayer(is_decoder, add_cross_attention) with learned positions and
             the output tied to the word embeddings (tests/reference/decoder.py is the same
             model, checked against taskgate to 1e-6); trained on exactly the batches
             `taskgate export-data CONFIG --batches N` lists (the same examples, in the same
             order), with the same loss (mean token cross-entropy, label smoothing), AdamW
             (betas 0.9/0.999, eps 1e-8, weight decay off for biases and LayerNorm), warmup and
             decay, gradient clipping and dropout rates. Dropout masks differ (different
             generators). Evaluated at the end with greedy decoding (or the config's beam) as
             taskgate decodes, text through the same tokenizer's decoder, metrics by sacrebleu.

Trivial baselines (copy the input, the most frequent training target) are computed on the same
test files. Prints one table (per seed and the mean of the seeds) and writes OUT/results.json.
Needs torch, transformers, tokenizers, safetensors and sacrebleu; the release binary
(`cargo build --release`).
"""
import argparse
import collections
import json
import math
import pathlib
import re
import subprocess
import sys
import time
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TG = ROOT / "target" / "release" / "taskgate"
PATH_KEYS = ("pretrained", "tokenizer", "train", "dev", "test")


def seeded_config(config: pathlib.Path, seed: int, out: pathlib.Path) -> pathlib.Path:
    """CONFIG with every `seed = N` line set to `seed` and data/model paths made absolute
    (looked up beside CONFIG first, then in the working directory, as taskgate does)."""
    lines = []
    for line in config.read_text().splitlines():
        line = re.sub(r"^(\s*seed\s*=\s*)\d+", lambda m: f"{m.group(1)}{seed}", line)
        m = re.match(r'^(\s*(%s)\s*=\s*)"([^"]+)"(.*)$' % "|".join(PATH_KEYS), line)
        if m and not pathlib.Path(m.group(3)).is_absolute():
            line = f'{m.group(1)}"{resolve(config, m.group(3))}"{m.group(4)}'
        lines.append(line)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"seed{seed}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


# ---------------------------------------------------------------------------------------------
# trivial baselines
# ---------------------------------------------------------------------------------------------

def read_pairs(path):
    pairs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                pairs.append((o["text"], o["target"]))
    return pairs


def scores(hyps, refs):
    """scripts/generation_baselines.py's metrics, by name."""
    from generation_baselines import scores as metrics   # this script's directory
    exact, bleu, chrf = metrics(hyps, refs)
    return {"exact_match": exact, "bleu": bleu, "chrf": chrf}


# ---------------------------------------------------------------------------------------------
# the PyTorch model
# ---------------------------------------------------------------------------------------------

def build_torch(model_dir: pathlib.Path):
    import torch
    from torch import nn
    from safetensors import safe_open
    from transformers import BertConfig, BertModel
    from transformers.models.bert.modeling_bert import BertLayer

    spec = tomllib.loads((model_dir / "taskgate.toml").read_text())
    enc = spec["encoder"]
    dropout = enc.get("dropout", 0.1)
    attn_dropout = enc.get("attention_dropout", dropout)

    def bert_config(**extra):
        return BertConfig(vocab_size=enc["vocab_size"], hidden_size=enc["hidden"],
                          num_hidden_layers=enc["layers"], num_attention_heads=enc["heads"],
                          intermediate_size=enc["intermediate"], hidden_act="gelu",
                          hidden_dropout_prob=dropout, attention_probs_dropout_prob=attn_dropout,
                          max_position_embeddings=enc["max_positions"],
                          type_vocab_size=enc["type_vocab_size"],
                          layer_norm_eps=enc["layer_norm_eps"], attn_implementation="eager", **extra)

    class Decoder(nn.Module):
        def __init__(self, dec):
            super().__init__()
            cfg = bert_config(is_decoder=True, add_cross_attention=True)
            cfg.num_attention_heads = dec["heads"]
            cfg.intermediate_size = dec["intermediate"]
            self.embeddings = nn.Module()
            self.embeddings.position_embeddings = nn.Embedding(dec["max_length"], enc["hidden"])
            self.embeddings.LayerNorm = nn.LayerNorm(enc["hidden"], eps=enc["layer_norm_eps"])
            self.drop = nn.Dropout(dropout)
            self.layer = nn.ModuleList(BertLayer(cfg, layer_idx=n) for n in range(dec["layers"]))

        def forward(self, word_embeddings, ids, memory, memory_mask):
            t = ids.shape[1]
            pos = self.embeddings.position_embeddings.weight[:t]
            x = self.drop(self.embeddings.LayerNorm(word_embeddings[ids] + pos))
            neg = torch.finfo(x.dtype).min
            causal = torch.ones(t, t, dtype=torch.bool).tril()
            self_mask = torch.zeros(1, 1, t, t).masked_fill(~causal, neg)
            cross_mask = torch.zeros(memory_mask.shape).masked_fill(memory_mask == 0, neg)[:, None, None, :]
            for layer in self.layer:
                x = layer(x, attention_mask=self_mask, encoder_hidden_states=memory,
                          encoder_attention_mask=cross_mask)[0]
            return x @ word_embeddings.t()

    class Task(nn.Module):
        def __init__(self, t):
            super().__init__()
            d = enc["hidden"]
            self.gate = {"scalar": nn.Linear(d, 1), "vector": nn.Linear(d, d)}.get(t.get("gate", "scalar"))
            self.decoder = Decoder(t["decoder"])

        def memory(self, h):
            return torch.sigmoid(self.gate(h)) * h if self.gate is not None else h

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(bert_config(), add_pooling_layer=False)
            self.tasks = nn.ModuleDict({t["name"]: Task(t) for t in spec["task"]})

        def named_params(self):
            out = dict(self.bert.named_parameters())
            out.update({f"tasks.{n}": p for n, p in self.tasks.named_parameters()})
            return out

        def forward(self, task, ids, types, mask, dec_ids):
            h = self.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
            t = self.tasks[task]
            return t.decoder(self.bert.embeddings.word_embeddings.weight, dec_ids, t.memory(h), mask)

    model = Model()
    params = model.named_params()
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        names = set(f.keys())
        missing, extra = sorted(set(params) - names), sorted(names - set(params))
        if missing or extra:
            raise SystemExit(f"{model_dir}: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for name, p in params.items():
                t = f.get_tensor(name)
                if tuple(t.shape) != tuple(p.shape):
                    raise SystemExit(f"{model_dir}: {name} is {tuple(t.shape)}, expected {tuple(p.shape)}")
                p.copy_(t)
    return model, spec


def pad(rows, value):
    import torch
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def lr_at(step, total, peak, warmup, decay):
    """taskgate's schedule (src/train/schedule.rs), steps counted from 1: linear warmup to
    `peak` over `warmup` steps, then constant, linear or cosine decay over the rest."""
    if step <= warmup:
        return peak * step / max(warmup, 1)
    progress = min((step - 1 - warmup) / max(total - warmup, 1), 1.0)
    factor = {"constant": 1.0, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}.get(decay, 1 - progress)
    return max(peak * factor, 0.0)


def train_torch(model, spec, train, batches_path, pad_id, threads):
    import torch
    torch.set_num_threads(threads)
    steps = [json.loads(line) for line in open(batches_path)]
    total = len(steps)
    w = train.get("warmup", 0.06)
    warmup = math.floor(w * total + 0.5) if w < 1 else int(w)
    # As taskgate: no weight decay on biases and LayerNorm parameters.
    no_decay = lambda n: n.endswith(".bias") or "LayerNorm" in n
    decayed = [p for n, p in model.named_params().items() if not no_decay(n)]
    plain = [p for n, p in model.named_params().items() if no_decay(n)]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": train.get("weight_decay", 0.01)},
                             {"params": plain, "weight_decay": 0.0}],
                            lr=0.0, betas=(0.9, 0.999), eps=1e-8)
    smoothing = {t["name"]: t.get("label_smoothing", 0.0) for t in spec["task"]}
    clip = train.get("clip", 1.0)
    model.train()
    losses = []
    start = time.time()
    for s, step in enumerate(steps, 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(s, total, train.get("lr", 1e-4), warmup, train.get("decay", "linear"))
        opt.zero_grad(set_to_none=True)
        for batch in step["batches"]:
            ids = pad(batch["input_ids"], pad_id)
            types = pad(batch["token_type_ids"], 0)
            mask = pad([[1] * len(r) for r in batch["input_ids"]], 0)
            targets = [lab["tokens"] for lab in batch["labels"]]
            dec_in = pad([t[:-1] for t in targets], pad_id)
            labels = pad([t[1:] for t in targets], -100)
            logits = model(batch["task"], ids, types, mask, dec_in)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                label_smoothing=smoothing[batch["task"]])
            loss.backward()
            losses.append(float(loss))
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if s % 50 == 0 or s == total:
            recent = losses[-50:]
            print(f"  torch step {s}/{total}: loss {sum(recent) / len(recent):.3f} "
                  f"({(time.time() - start) / s:.2f} s/step)", flush=True)
    return time.time() - start, losses


def decode_torch(model, task, tokenizer, texts, max_new_tokens, bos, eos, pad_id):
    """Greedy, batched, re-running the decoder over the prefixes (same rule as taskgate's:
    argmax, lowest id on ties, stop at EOS)."""
    import torch
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            enc = [tokenizer.encode(t) for t in texts[i:i + 64]]
            ids = pad([e.ids for e in enc], pad_id)
            types = pad([e.type_ids for e in enc], 0)
            mask = pad([[1] * len(e.ids) for e in enc], 0)
            h = model.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
            t = model.tasks[task]
            memory = t.memory(h)
            seqs = [[bos] for _ in enc]
            done = [False] * len(enc)
            for _ in range(max_new_tokens):
                logits = t.decoder(model.bert.embeddings.word_embeddings.weight,
                                   pad(seqs, pad_id), memory, mask)[:, -1]
                nxt = logits.argmax(-1).tolist()
                for b, tok in enumerate(nxt):
                    seqs[b].append(pad_id if done[b] else tok)
                    done[b] = done[b] or tok == eos
                if all(done):
                    break
            for s in seqs:
                gen = s[1:]
                if eos in gen:
                    gen = gen[:gen.index(eos)]
                out.append(tokenizer.decode(gen, skip_special_tokens=True))
    return out


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=pathlib.Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "runs" / "generation-baseline")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-taskgate", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--torch-mask-seed", type=int, default=None,
                    help="seed PyTorch's generator (its dropout masks) with this instead of the "
                         "config's seed; initial weights and batches stay the config seed's")
    args = ap.parse_args()
    cfg = tomllib.loads(args.config.read_text())
    kinds = {t.get("kind") for t in cfg.get("task", [])}
    if kinds != {"generation"}:
        raise SystemExit(f"{args.config}: every task must be a generation task (found {sorted(kinds)})")
    train = cfg.get("train", {})
    if "steps" not in train:
        raise SystemExit(f"{args.config}: [train] steps is required (the batches are listed per step)")
    if train.get("mixing", "one_task") != "one_task" or train.get("weighting", "static") != "static":
        raise SystemExit(f"{args.config}: only mixing = \"one_task\" with static weights is reproduced")
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}

    def save():
        results_path.write_text(json.dumps(results, indent=1))

    tasks = [t["name"] for t in cfg["task"]]
    for seed in args.seeds:
        config = seeded_config(args.config, seed, args.out)
        key = f"seed{seed}"
        if not args.skip_taskgate and f"taskgate/{key}" not in results:
            run_dir = args.out / f"taskgate-{key}"
            start = time.time()
            if (run_dir / "last" / "state.json").exists():
                state = json.loads((run_dir / "last" / "state.json").read_text())
                if state["step"] < state["total_steps"]:
                    run([TG, "train", "--resume", run_dir])
            else:
                run([TG, "train", config, "--out", run_dir])
            seconds = time.time() - start
            ev = json.loads(run([TG, "eval", run_dir, "--split", "test", "--json"],
                                capture_output=True, text=True).stdout)
            results[f"taskgate/{key}"] = {"seconds": seconds, "metrics": ev["metrics"]}
            save()
        if not args.skip_taskgate and f"taskgate/{key}" in results:
            for t in cfg["task"]:
                m = results[f"taskgate/{key}"]["metrics"][t["name"]]
                if "samples" not in m:
                    m["samples"] = taskgate_examples(args.out / f"taskgate-{key}", t["name"],
                                                      resolve(args.config, t["test"]), args.out)
                    save()
        mask_seed = seed if args.torch_mask_seed is None else args.torch_mask_seed
        done = results.get(f"torch/{key}")
        if not args.skip_torch and done and done.get("mask_seed", seed) != mask_seed:
            raise SystemExit(f"{results_path}: PyTorch's {key} was trained with masks from seed "
                             f"{done.get('mask_seed', seed)}, not {mask_seed}: use another --out")
        if not args.skip_torch and f"torch/{key}" not in results:
            init_dir = args.out / f"init-{key}"
            if not (init_dir / "model.safetensors").exists():
                run([TG, "init", config, "--out", init_dir])
            batches = args.out / f"batches-{key}.jsonl"
            if not batches.exists():
                run([TG, "export-data", config, "--batches", train["steps"], "--output", batches])
            import torch
            torch.manual_seed(mask_seed)
            from tokenizers import Tokenizer
            model, spec = build_torch(init_dir)
            tokenizer = Tokenizer.from_file(str(init_dir / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(spec["encoder"].get("max_length", 512))
            pad_id = tokenizer.token_to_id("[PAD]")
            bos, eos = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
            seconds, losses = train_torch(model, spec, train, batches, pad_id, args.threads)
            metrics = {}
            for t in spec["task"]:
                pairs = read_pairs(t["test"])
                gen = t.get("generate", {})
                if gen.get("beam", 1) != 1:
                    print(f"warning: task {t['name']}: PyTorch decodes greedily, taskgate with beam "
                          f"{gen['beam']}", file=sys.stderr)
                max_new = min(gen.get("max_new_tokens", 10**9), t["decoder"]["max_length"])
                hyps = decode_torch(model, t["name"], tokenizer, [p[0] for p in pairs], max_new,
                                    bos, eos, pad_id)
                metrics[t["name"]] = scores(hyps, [p[1] for p in pairs])
                metrics[t["name"]]["samples"] = [{"input": p[0], "target": p[1], "output": h}
                                                  for p, h in list(zip(pairs, hyps))[:12]]
            results[f"torch/{key}"] = {"seconds": seconds, "metrics": metrics, "losses": losses,
                                       "mask_seed": mask_seed}
            save()

    print_table(args, cfg, results)


def taskgate_examples(run_dir, task, test_path, out, n=12):
    """The first `n` test inputs through `taskgate predict` (the best checkpoint)."""
    pairs = read_pairs(test_path)[:n]
    inputs = out / f"examples-{task}.jsonl"
    inputs.write_text("".join(json.dumps({"text": p[0]}) + "\n" for p in pairs))
    preds = run([TG, "predict", run_dir, "--input", inputs], capture_output=True, text=True).stdout
    texts = [json.loads(line)["predictions"][task]["text"] for line in preds.splitlines() if line.strip()]
    return [{"input": p[0], "target": p[1], "output": h} for p, h in zip(pairs, texts)]


def resolve(config: pathlib.Path, value: str) -> pathlib.Path:
    p = pathlib.Path(value)
    if p.is_absolute():
        return p
    beside = (config.parent / p).resolve()
    return beside if beside.exists() else p.resolve()


def print_table(args, cfg, results):
    rows = []
    for t in cfg["task"]:
        name = t["name"]
        train_pairs = read_pairs(resolve(args.config, t["train"]))
        test_pairs = read_pairs(resolve(args.config, t["test"]))
        refs = [p[1] for p in test_pairs]
        frequent = collections.Counter(p[1] for p in train_pairs).most_common(1)[0][0]
        rows.append((name, "copy the input", "", scores([p[0] for p in test_pairs], refs)))
        rows.append((name, "most frequent training target", "", scores([frequent] * len(refs), refs)))
        for system in ("torch", "taskgate"):
            got = [(s, results[f"{system}/seed{s}"]) for s in args.seeds if f"{system}/seed{s}" in results]
            for seed, r in got:
                masks = r.get("mask_seed", seed)
                run_name = f"seed {seed}" + (f", masks from seed {masks}" if masks != seed else "")
                rows.append((name, "PyTorch" if system == "torch" else "taskgate", run_name,
                             {**r["metrics"][name], "seconds": r["seconds"]}))
            if len(got) > 1:
                mean = {k: sum(r["metrics"][name][k] for _, r in got) / len(got)
                        for k in ("exact_match", "bleu", "chrf")}
                mean["seconds"] = sum(r["seconds"] for _, r in got) / len(got)
                rows.append((name, "PyTorch" if system == "torch" else "taskgate", "mean", mean))
    print("\n| task | system | run | exact match | BLEU | chrF | train seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, system, run_name, m in rows:
        secs = f"{m['seconds']:.0f}" if "seconds" in m else ""
        print(f"| {name} | {system} | {run_name} | {m['exact_match']:.3f} | {m['bleu']:.2f} | "
              f"{m['chrf']:.2f} | {secs} |")
    for key, r in sorted(results.items()):
        for name, m in r["metrics"].items():
            for e in m.get("samples", [])[:8]:
                print(f"  {key} {name}: {e['input']!r} -> {e['output']!r} (target {e['target']!r})")


if __name__ == "__main__":
    sys.exit(main())
