#!/usr/bin/env python3
"""PyTorch reference of taskgate's text-generation decoder: model, loss, cached greedy and beam
decoding. This docstring is the spec the Rust code follows; `make_decoder_fixture.py` pins it
with numbers (tests/fixtures/decoder/).

Model
-----
A stack of Hugging Face `BertLayer`s with `is_decoder=True, add_cross_attention=True` (post-LN,
exact erf GELU, LayerNorm eps 1e-12, no dropout), reading a memory m [B,Ts,d] (the task's gated
encoder output) with a key-padding mask mem_mask [B,Ts] (1 real, 0 pad), and decoder input ids
[B,Tt]. Parameter names are Hugging Face's (prefix `decoder.`), so a BERT layer can warm-start
one; linear weights are [out, in]:

    word_embeddings                                   [V, d]   the shared encoder's table E
    decoder.embeddings.position_embeddings.weight     [max_length, d]   P
    decoder.embeddings.LayerNorm.{weight,bias}        [d]
    decoder.layer.{n}.attention.self.{query,key,value}.{weight,bias}
    decoder.layer.{n}.attention.output.dense.{weight,bias}
    decoder.layer.{n}.attention.output.LayerNorm.{weight,bias}
    decoder.layer.{n}.crossattention.self.{query,key,value}.{weight,bias}
    decoder.layer.{n}.crossattention.output.dense.{weight,bias}
    decoder.layer.{n}.crossattention.output.LayerNorm.{weight,bias}
    decoder.layer.{n}.intermediate.dense.{weight,bias}            [I, d], [I]
    decoder.layer.{n}.output.dense.{weight,bias}                  [d, I], [d]
    decoder.layer.{n}.output.LayerNorm.{weight,bias}

Forward (teacher forcing):
    x = LN_emb(E[ids] + P[0..Tt])
    per layer:  a = LN1(x + Wo1 · SelfAttn(x))            causal: query i sees keys 0..=i
                c = LN2(a + Wo2 · CrossAttn(a, m))        padded memory keys masked out
                x = LN3(c + W_out · gelu(W_in · c))
    logits = x · Eᵀ   [B,Tt,V]     (tied with the token embeddings: no bias, no LM-head transform)

Attention: H heads of dh = d/H, scores (q·k)/sqrt(dh), a masked key's score replaced by
torch.finfo(dtype).min (Hugging Face adds that value; after the softmax both are exactly 0),
softmax over keys, context = probs·V, heads concatenated in order. There is no padding mask on
the decoder side: padding is on the right, so a real query never sees it (padded positions are
computed but feed no loss).

Loss: F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=ε): mean over the
target tokens whose label != -100 of (1-ε)·(-log p[label]) + ε·mean_v(-log p[v]).

Decoding (deterministic; BOS = [CLS], EOS = [SEP], PAD = [PAD])
---------------------------------------------------------------
Both decoders run batched with a key/value cache: each layer's self-attention keys/values are
appended one position per step; each layer's cross-attention keys/values are computed once per
input from m. A step feeds, for every live row, the row's last token at position p (the number
of tokens already fed; BOS is fed at p = 0) and gives that row's logits [V]. Positions never
exceed max_length - 1, so max_new_tokens <= max_length. Output token lists hold the GENERATED
tokens only (BOS excluded, EOS included when emitted).

greedy(max_new_tokens):
    Every row starts as [BOS]. Step s = 1, 2, ...: each unfinished row appends the argmax of its
    logits (ties -> lowest id); a row that appended EOS is finished. Stop when every row is
    finished or after max_new_tokens steps. Output [B, steps run], positions after a row's EOS
    filled with PAD.

beam(K, α, max_new_tokens), per input independently (inputs are batched, results are not
coupled):
    live = [([BOS], score 0)], finished = []. At step s = 1, 2, ..., max_new_tokens:
    1. For every live beam b (in the order of `live`, b = 0, 1, ...): lp_b = log_softmax of its
       logits (computed in f64 here). Candidates (score_b + lp_b[t], b, t) for every live beam b
       and every token t (0 <= t < V).
    2. Sort the candidates by score descending; ties by b ascending, then t ascending.
    3. Walk the sorted list from rank 0, new_live = []:
         - t == EOS: if rank < K the candidate becomes a finished hypothesis
           (tokens of b + [EOS], raw score, normalized score = score / s**α, where s = number of
           generated tokens, EOS included); if rank >= K it is dropped. Either way it does not
           become live.
         - otherwise it is appended to new_live (tokens of b + [t], score);
         - stop as soon as len(new_live) == K.
       live = new_live, in walk order (this order is the beam index b of the next step).
    4. If len(finished) >= K: the input is done (its live beams are discarded).
       Else if s == max_new_tokens: every live beam is added as a hypothesis with normalized
       score = score / s**α (s = max_new_tokens tokens, no EOS); the input is done.
    Result: all hypotheses sorted by normalized score descending (ties: fewer tokens first,
    then lexicographically smaller token ids), the first K kept, each with its normalized score.
    (More than K may have finished, at most 2K-1: up to K EOS candidates can finish in the step
    that reaches K.) A done input takes no further steps; decoding stops when all are done.

Gaps (what f32 must not flip): greedy: per unfinished row and step, logit(top1) - logit(top2).
Beam: per input and step, the differences between consecutive sorted candidate scores from
rank 0 to the rank one past the candidate that completed new_live (this covers the order of the
walked candidates and the rank-K boundary of the EOS rule); and in the final result, the
differences between consecutive normalized scores of the first min(#hypotheses, K+1).

Library use:
    model = DecoderModel(DecoderConfig(...)).to(torch.float64); load_weights(model, tensors)
    logits = model(ids, memory, memory_mask); loss = token_loss(logits, labels, 0.1)
    out = greedy(model, memory, memory_mask, max_new_tokens=8, bos=2, eos=3, pad=0)
    out = beam(model, memory, memory_mask, beam_size=3, alpha=1.0, max_new_tokens=8, bos=2, eos=3)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE = -100


@dataclass
class DecoderConfig:
    vocab_size: int
    hidden: int
    heads: int
    layers: int
    intermediate: int
    max_length: int
    layer_norm_eps: float = 1e-12

    @property
    def head_dim(self) -> int:
        assert self.hidden % self.heads == 0
        return self.hidden // self.heads


# --------------------------------------------------------------------------------------------
# Modules (attribute names give Hugging Face's parameter names)
# --------------------------------------------------------------------------------------------

class Projections(nn.Module):
    """`*.self`: the query/key/value linears."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)


class AddNorm(nn.Module):
    """`*.output`: LN(residual + dense(x))."""

    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(residual + self.dense(x))


class Attention(nn.Module):
    """`attention` / `crossattention`: multi-head attention followed by AddNorm."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.heads, self.dh = cfg.heads, cfg.head_dim
        self.self = Projections(cfg)
        self.output = AddNorm(cfg.hidden, cfg.hidden, cfg.layer_norm_eps)

    def split(self, y):
        """[N,T,d] -> [N,H,T,dh]"""
        n, t, _ = y.shape
        return y.view(n, t, self.heads, self.dh).transpose(1, 2)

    def keys_values(self, src):
        return self.split(self.self.key(src)), self.split(self.self.value(src))

    def forward(self, x, k, v, allowed=None):
        """x [N,Tq,d] queries (and residual); k, v [N,H,Tk,dh]; allowed: bool broadcastable to
        [N,H,Tq,Tk] (True = the query may see the key) or None."""
        q = self.split(self.self.query(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v)                       # [N,H,Tq,dh]
        n, _, tq, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(n, tq, self.heads * self.dh)
        return self.output(ctx, x)


class Intermediate(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)

    def forward(self, x):
        return F.gelu(self.dense(x), approximate="none")


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.crossattention = Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = AddNorm(cfg.intermediate, cfg.hidden, cfg.layer_norm_eps)

    def forward(self, x, memory, mem_mask):
        """Teacher-forced: x [N,T,d], memory [N,Ts,d], mem_mask [N,Ts] (1 real, 0 pad)."""
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        k, v = self.attention.keys_values(x)
        a = self.attention(x, k, v, causal.view(1, 1, t, t))
        mk, mv = self.crossattention.keys_values(memory)
        c = self.crossattention(a, mk, mv, mem_mask.bool()[:, None, None, :])
        return self.output(self.intermediate(c), c)

    def step(self, x, cache: "Cache", n: int):
        """One new position per row: x [N,1,d]; appends to layer n's self-attention cache."""
        k, v = self.attention.keys_values(x)
        if cache.self_k[n] is not None:
            k = torch.cat([cache.self_k[n], k], dim=2)
            v = torch.cat([cache.self_v[n], v], dim=2)
        cache.self_k[n], cache.self_v[n] = k, v
        a = self.attention(x, k, v)                        # sees every cached key: 0..=p
        rows = cache.rows
        c = self.crossattention(a, cache.cross_k[n][rows], cache.cross_v[n][rows],
                                cache.mem_allowed[rows][:, None, None, :])
        return self.output(self.intermediate(c), c)


class Embeddings(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.position_embeddings = nn.Embedding(cfg.max_length, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.layer = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.layers)])


class DecoderModel(nn.Module):
    """`word_embeddings` (tied input/output table) + `decoder.*`."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.hidden))
        self.decoder = Decoder(cfg)
        self.eval()

    def named_params(self) -> dict[str, nn.Parameter]:
        return dict(self.named_parameters())

    def embed(self, ids, start: int = 0):
        t = ids.shape[1]
        assert start + t <= self.cfg.max_length, "position past max_length"
        emb = self.decoder.embeddings
        pos = emb.position_embeddings.weight[start:start + t]
        return emb.LayerNorm(self.word_embeddings[ids] + pos.unsqueeze(0))

    def hidden(self, ids, memory, mem_mask):
        x = self.embed(ids)
        for layer in self.decoder.layer:
            x = layer(x, memory, mem_mask)
        return x

    def forward(self, ids, memory, mem_mask):
        """ids [N,T] long, memory [N,Ts,d], mem_mask [N,Ts] -> logits [N,T,V]"""
        return self.hidden(ids, memory, mem_mask) @ self.word_embeddings.t()

    # ---- cached decoding ----------------------------------------------------------------

    def start_cache(self, memory, mem_mask) -> "Cache":
        cross_k, cross_v = [], []
        for layer in self.decoder.layer:
            k, v = layer.crossattention.keys_values(memory)
            cross_k.append(k)
            cross_v.append(v)
        L = len(self.decoder.layer)
        return Cache(rows=torch.arange(memory.shape[0]), cross_k=cross_k, cross_v=cross_v,
                     mem_allowed=mem_mask.bool(), self_k=[None] * L, self_v=[None] * L, length=0)

    def step(self, cache: "Cache", last_ids) -> torch.Tensor:
        """Feeds last_ids [N] (one per cache row) at position cache.length; returns logits [N,V]."""
        x = self.embed(last_ids.view(-1, 1), start=cache.length)
        for n, layer in enumerate(self.decoder.layer):
            x = layer.step(x, cache, n)
        cache.length += 1
        return (x @ self.word_embeddings.t())[:, 0]


@dataclass
class Cache:
    rows: torch.Tensor          # [N] input index of each row
    cross_k: list               # per layer [B,H,Ts,dh], computed once per input
    cross_v: list
    mem_allowed: torch.Tensor   # [B,Ts] bool
    self_k: list                # per layer [N,H,p,dh] (None before the first step)
    self_v: list
    length: int                 # positions fed so far

    def select(self, parents: list[int]):
        """Keeps/reorders/duplicates rows: new row j continues old row parents[j]."""
        idx = torch.tensor(parents, dtype=torch.long)
        self.rows = self.rows[idx]
        self.self_k = [k[idx] for k in self.self_k]
        self.self_v = [v[idx] for v in self.self_v]


# --------------------------------------------------------------------------------------------
# Weights, loss
# --------------------------------------------------------------------------------------------

def parameter_shapes(cfg: DecoderConfig) -> dict[str, tuple]:
    return {n: tuple(p.shape) for n, p in DecoderModel(cfg).named_params().items()}


def load_weights(model: DecoderModel, tensors: dict[str, torch.Tensor]):
    """Strict: every name, no extra, exact shapes."""
    params = model.named_params()
    missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
    if missing or extra:
        raise ValueError(f"missing {missing}, unexpected {extra}")
    with torch.no_grad():
        for name, p in params.items():
            t = tensors[name]
            if tuple(t.shape) != tuple(p.shape):
                raise ValueError(f"`{name}` has shape {tuple(t.shape)}, expected {tuple(p.shape)}")
            p.copy_(t.to(p.dtype))


def token_loss(logits, labels, label_smoothing: float = 0.0):
    """Mean token cross-entropy over labels != -100 (torch semantics)."""
    v = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, v), labels.reshape(-1).long(), ignore_index=IGNORE,
                           label_smoothing=label_smoothing)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

def _check_step(model, memory, mem_mask, cache, prefixes, logits) -> float:
    """Max abs difference between the cached step's logits and a full re-run of each prefix."""
    ids = torch.tensor(prefixes, dtype=torch.long)
    full = model(ids, memory[cache.rows], mem_mask[cache.rows])[:, -1]
    return float((full - logits).abs().max())


@torch.no_grad()
def greedy(model: DecoderModel, memory, mem_mask, max_new_tokens: int, bos: int, eos: int,
           pad: int, check_cache: bool = False) -> dict:
    """Returns {"tokens": [B][steps] (PAD after EOS), "ended": [B] bool, "steps": int,
    "step_min_gap": [steps] (min over unfinished rows of top1 - top2 logit),
    "cache_max_diff": float or None}."""
    assert max_new_tokens <= model.cfg.max_length
    B = memory.shape[0]
    cache = model.start_cache(memory, mem_mask)
    seqs = [[bos] for _ in range(B)]
    done = [False] * B
    gaps, diff = [], 0.0
    for _ in range(max_new_tokens):
        # every row is fed its last token (a finished row: EOS, then PAD; its logits are unused)
        last = torch.tensor([s[-1] for s in seqs], dtype=torch.long)
        logits = model.step(cache, last)
        if check_cache:
            diff = max(diff, _check_step(model, memory, mem_mask, cache, seqs, logits))
        step_gap = math.inf
        for b in range(B):
            if done[b]:
                seqs[b].append(pad)
                continue
            row = logits[b]
            tok = int(torch.argmax(row))                       # first maximum = lowest id
            top2 = torch.topk(row, 2).values
            step_gap = min(step_gap, float(top2[0] - top2[1]))
            seqs[b].append(tok)
            done[b] = tok == eos
        gaps.append(step_gap)
        if all(done):
            break
    return {"tokens": [s[1:] for s in seqs], "ended": done, "steps": len(gaps),
            "step_min_gap": gaps, "cache_max_diff": diff if check_cache else None}


@torch.no_grad()
def beam(model: DecoderModel, memory, mem_mask, beam_size: int, alpha: float,
         max_new_tokens: int, bos: int, eos: int, check_cache: bool = False) -> dict:
    """Returns {"hypotheses": [B][<=K] of {"tokens", "score"}, "steps": [B] steps run,
    "early": [B] (ended with K finished before max_new_tokens), "step_min_gap": [max steps]
    (min over the inputs still running), "final_min_gap": [B], "cache_max_diff"}."""
    assert max_new_tokens <= model.cfg.max_length
    K = beam_size
    B = memory.shape[0]
    V = model.cfg.vocab_size
    cache = model.start_cache(memory, mem_mask)
    live = [[([bos], 0.0)] for _ in range(B)]        # per input: (tokens incl. BOS, score)
    finished = [[] for _ in range(B)]                # per input: (generated tokens, norm score)
    done = [False] * B
    steps = [0] * B
    gaps, diff = [], 0.0
    for s in range(1, max_new_tokens + 1):
        active = [i for i in range(B) if not done[i]]
        if not active:
            break
        last = torch.tensor([t[-1] for i in active for t, _ in live[i]], dtype=torch.long)
        logits = model.step(cache, last)
        if check_cache:
            prefixes = [t for i in active for t, _ in live[i]]
            diff = max(diff, _check_step(model, memory, mem_mask, cache, prefixes, logits))
        logp = torch.log_softmax(logits, dim=-1).tolist()
        row = 0
        parents = []
        step_gap = math.inf
        for i in active:
            cands = []
            for b, (_, score) in enumerate(live[i]):
                lp = logp[row + b]
                cands.extend((score + lp[t], b, t) for t in range(V))
            cands.sort(key=lambda c: (-c[0], c[1], c[2]))
            new_live, last_rank = [], None
            for rank, (sc, b, t) in enumerate(cands):
                if t == eos:
                    if rank < K:
                        finished[i].append((live[i][b][0][1:] + [eos], sc / s ** alpha))
                    continue
                new_live.append((live[i][b][0] + [t], sc))
                parents.append(row + b)
                if len(new_live) == K:
                    last_rank = rank
                    break
            assert last_rank is not None and last_rank + 1 < len(cands)
            step_gap = min(step_gap, min(cands[r][0] - cands[r + 1][0] for r in range(last_rank + 1)))
            row += len(live[i])
            live[i] = new_live
            steps[i] = s
            if len(finished[i]) >= K:
                done[i] = True
            elif s == max_new_tokens:
                finished[i].extend((t[1:], sc / s ** alpha) for t, sc in new_live)
                done[i] = True
            if done[i]:
                # drop this input's rows from the cache
                del parents[len(parents) - len(new_live):]
        gaps.append(step_gap)
        if parents:
            cache.select(parents)
    hyps, final_gaps = [], []
    for i in range(B):
        ranked = sorted(finished[i], key=lambda h: (-h[1], len(h[0]), h[0]))
        head = ranked[:K + 1]
        final_gaps.append(min((head[r][1] - head[r + 1][1] for r in range(len(head) - 1)),
                              default=math.inf))
        hyps.append([{"tokens": t, "score": sc} for t, sc in ranked[:K]])
    return {"hypotheses": hyps, "steps": steps,
            "early": [steps[i] < max_new_tokens for i in range(B)],
            "step_min_gap": gaps, "final_min_gap": final_gaps,
            "cache_max_diff": diff if check_cache else None}
