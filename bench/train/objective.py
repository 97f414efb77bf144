"""The objective: model and head as one module (what DDP wraps), for the task's kind."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from bench.train.config import IGNORE


class Objective(nn.Module):
    """batch -> (summed loss, correct, counted targets, new state) for the task's kind.

    classify: model.classify(hidden, mask) vs target [B]; retrieval: each tower's hidden,
    model.retrieve, vs target [B]; lm: model.logits(hidden) [B, T, V] vs target [B, T]
    (-100: not counted). The loss is in float32 whatever the autocast."""

    def __init__(self, model, kind: str):
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, batch: dict, state=None):
        m, tokens, mask = self.model, batch["tokens"], batch.get("mask")
        new_state = None
        if self.kind == "retrieval":
            h1, _ = m(tokens, mask=mask)
            h2, _ = m(batch["tokens2"], mask=batch["mask2"])
            logits = m.retrieve(h1, mask, h2, batch["mask2"])  # [B, C]
        elif self.kind == "classify":
            hidden, _ = m(tokens, mask=mask)
            logits = m.classify(hidden, mask)  # [B, C]
        else:
            hidden, new_state = m(tokens, state, mask=mask)
            logits = m.logits(hidden)  # [B, T, V]
        logits = logits.float()
        target = batch["target"]
        loss = F.cross_entropy(logits.flatten(0, -2), target.flatten(), ignore_index=IGNORE, reduction="sum")
        valid = target != IGNORE
        correct = ((logits.argmax(-1) == target) & valid).sum()
        return loss, correct, valid.sum(), new_state
