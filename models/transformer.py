"""transformer (seed 004): the baseline every other family is compared against.

Pre-norm blocks ``x += attn(rmsnorm(x)); x += swiglu(rmsnorm(x))`` and a final RMSNorm
(as in LLaMA); causal multi-head attention with rotary position embeddings on q and k
(Su et al. 2021; sin/cos tables precomputed up to ``max_seq_len`` and grown on demand)
through ``F.scaled_dot_product_attention``; a SwiGLU feedforward with a hidden size near
8/3 d; embeddings tied to the LM head. ``causal=False`` gives the bidirectional encoder
that LRA's classifiers use (padding keys masked out). It calls no registry op.

State: the KV cache, one ``(k, v)`` pair per layer, each ``[B, H, T_past, Dh]``; the
position of the next token is ``T_past``. Feeding a sequence in chunks with the returned
state equals one pass, and one token at a time is KV-cache decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models import register_family
from models.common import RMSNorm, SequenceModel, SwiGLU
from models.config import ModelConfig, invalid, limits


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    family = "transformer"

    n_heads: int = field(default=4, metadata=limits(1))  # attention heads; d_model % n_heads == 0
    ffn_hidden: int = field(default=0, metadata=limits(0))  # SwiGLU hidden size; 0: 8/3 d_model rounded up to 8
    max_seq_len: int = field(default=4096, metadata=limits(1))  # RoPE tables precomputed this far (grown on demand)
    rope_base: float = field(default=10000.0, metadata=limits(1.0))  # RoPE frequency base

    def check(self):
        if self.d_model % self.n_heads:
            raise invalid(self.family, "d_model", f"a multiple of n_heads={self.n_heads}", self.d_model)
        if (self.d_model // self.n_heads) % 2:
            raise invalid(self.family, "d_model", f"d_model / n_heads even (RoPE rotates pairs); n_heads={self.n_heads}",
                          self.d_model)


def rope_tables(length: int, dh: int, base: float, device=None):
    """cos, sin: [length, dh/2] for rotating feature pairs (x[2i], x[2i+1])."""
    inv = base ** (-torch.arange(0, dh, 2, dtype=torch.float64, device=device) / dh)  # [dh/2]
    angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv  # [length, dh/2]
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """x [B, H, T, Dh]; cos, sin [T, Dh/2] for the positions of x's tokens."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.h = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.causal = cfg.causal

    def forward(self, x, cos, sin, cache, key_mask):
        """x [B, T, d]; cos/sin [T, Dh/2] at this chunk's positions; cache None or (k, v)
        [B, H, T_past, Dh]; key_mask [B, T_past + T] bool or None. Returns y, (k, v)."""
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, Dh]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        past = k.shape[2] - T
        mask = None
        if self.causal and (past > 0 or key_mask is not None):
            # query i (absolute position past + i) sees keys j <= past + i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)  # [T, T_all]
        if key_mask is not None:
            pad = key_mask[:, None, None, :]  # [B, 1, 1, T_all]
            mask = pad if mask is None else mask & pad
            # a query whose every key is masked (a padded query with nothing before it) would
            # give NaN; let it see itself: its output is padding and never used
            mask = mask | torch.eye(T, past + T, dtype=torch.bool, device=x.device).roll(past, dims=1)
        is_causal = self.causal and mask is None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)  # [B, H, T, Dh]
        return self.out(y.transpose(1, 2).reshape(B, T, d)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(cfg.d_model), RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ffn = SwiGLU(cfg.d_model, cfg.ffn_hidden or None)

    def forward(self, x, cos, sin, cache, key_mask):
        y, cache = self.attn(self.norm1(x), cos, sin, cache, key_mask)
        x = x + y
        return x + self.ffn(self.norm2(x)), cache


@register_family
class Transformer(SequenceModel):
    """Pre-norm RMSNorm transformer with RoPE, SwiGLU and a KV cache (the baseline)."""

    Config = TransformerConfig
    test_configs = (("causal", dict(d_model=32, n_heads=4, n_layers=2)),)

    def __init__(self, config: TransformerConfig, ops):
        super().__init__(config, ops)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model)
        cos, sin = rope_tables(config.max_seq_len, config.d_model // config.n_heads, config.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _tables(self, start: int, stop: int):
        if stop > self.cos.shape[0]:  # grow the tables (generation past max_seq_len)
            cos, sin = rope_tables(2 * stop, self.cos.shape[1] * 2, self.config.rope_base, self.cos.device)
            self.cos, self.sin = cos, sin
        return self.cos[start:stop], self.sin[start:stop]

    def forward(self, tokens, state=None, mask=None):
        """tokens [B, T] int64; state None or {"kv": [(k, v)] per layer, "mask": [B, T_past]
        or None}; returns hidden [B, T, d] and the grown state."""
        self.check_tokens(tokens, state, mask)
        B, T = tokens.shape
        caches = state["kv"] if state is not None else [None] * len(self.blocks)
        past = 0 if state is None else caches[0][0].shape[2]
        key_mask = mask
        if state is not None and (state["mask"] is not None or mask is not None):
            old = state["mask"] if state["mask"] is not None else torch.ones(B, past, dtype=torch.bool, device=tokens.device)
            new = mask if mask is not None else torch.ones(B, T, dtype=torch.bool, device=tokens.device)
            key_mask = torch.cat([old, new], dim=1)
        cos, sin = self._tables(past, past + T)
        x = self.embed(tokens)
        new_caches = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block(x, cos, sin, cache, key_mask)
            new_caches.append(cache)
        return self.norm(x), {"kv": new_caches, "mask": key_mask}
