"""Generation for every family used as an LM (DESIGN.md 7.7).

    from models.generate import Sampling, generate
    out = generate(model, prompt, Sampling(max_new_tokens=200, temperature=0.8, top_k=40))
    out.tokens[0], out.stop_reasons[0]      # the new tokens of row 0, why it stopped

The prompt is run once; then one token at a time continues from the family's state (a
recurrent state or a KV cache), never re-running the prefix. Stops, per row: EOS, the
length limit, or the confidence stop of seed 004: ``patience`` consecutive tokens whose
top probability is below ``confidence`` (default 3 tokens below 0.15).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from models.config import invalid


@dataclass(frozen=True)
class Sampling:
    family = "sampling"

    max_new_tokens: int = 100  # the length limit
    temperature: float = 1.0  # 0: greedy (argmax)
    top_k: int | None = None  # sample among the k most probable tokens only
    confidence: float = 0.15  # a token is unsure when its top probability is below this
    patience: int = 3  # stop after this many unsure tokens in a row (0: never)
    eos_id: int | None = None  # stop at this token
    seed: int = 0  # the sampler's generator

    def __post_init__(self):
        for name, lo in (("max_new_tokens", 1), ("patience", 0)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < lo:
                raise invalid("sampling", name, f"an int >= {lo}", getattr(self, name))
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise invalid("sampling", "temperature", "a float >= 0 (0: greedy)", self.temperature)
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise invalid("sampling", "top_k", "None or an int >= 1", self.top_k)
        if not 0 <= self.confidence <= 1:
            raise invalid("sampling", "confidence", "a probability in [0, 1]", self.confidence)


@dataclass
class Generation:
    tokens: list[list[int]]  # new tokens per row (the stopping token included)
    stop_reasons: list[str]  # "eos" | "length" | "unsure" per row
    top_probs: list[list[float]] = field(default_factory=list)  # the top probability at each new token


def next_token(logits, s: Sampling, generator):
    """logits [B, V] -> (token [B], top probability [B]) under the sampling rule."""
    probs = torch.softmax(logits.float(), dim=-1)
    top = probs.max(dim=-1).values
    if s.temperature == 0:
        return logits.argmax(dim=-1), top
    scaled = logits.float() / s.temperature
    if s.top_k is not None and s.top_k < scaled.shape[-1]:
        kth = scaled.topk(s.top_k, dim=-1).values[:, -1:]  # [B, 1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    choice = torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=generator)[:, 0]
    return choice, top


@torch.no_grad()
def generate(model, prompt, sampling: Sampling = Sampling()) -> Generation:
    """prompt [B, T] (or [T]) int64 -> the continuation of every row."""
    if not model.config.causal:
        raise ValueError(f"{model.config.family}: generation needs a causal config, the config has causal=False")
    if prompt.dim() == 1:
        prompt = prompt[None]
    gen = torch.Generator(device="cpu").manual_seed(sampling.seed)
    B = prompt.shape[0]
    hidden, state = model(prompt)
    logits = model.logits(hidden[:, -1])
    tokens: list[list[int]] = [[] for _ in range(B)]
    tops: list[list[float]] = [[] for _ in range(B)]
    reasons: list[str | None] = [None] * B
    unsure = [0] * B
    for _ in range(sampling.max_new_tokens):
        tok, top = next_token(logits.cpu(), sampling, gen)
        for b in range(B):
            if reasons[b] is not None:
                continue
            tokens[b].append(int(tok[b]))
            tops[b].append(float(top[b]))
            unsure[b] = unsure[b] + 1 if top[b] < sampling.confidence else 0
            if sampling.eos_id is not None and int(tok[b]) == sampling.eos_id:
                reasons[b] = "eos"
            elif sampling.patience and unsure[b] >= sampling.patience:
                reasons[b] = "unsure"
        if all(r is not None for r in reasons):
            break
        hidden, state = model(tok[:, None].to(prompt.device), state)
        logits = model.logits(hidden[:, -1])
    return Generation(tokens, [r or "length" for r in reasons], tops)
