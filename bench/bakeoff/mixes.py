"""The mix a bake-off cell trains under: the one named by ``--mix``; else the fastest
correct mix in the model profile's records (kind="model", status ok, gate passed, a
registry mix rather than a whole-model peer) for the same family and config; else the
default: numba_cpu for every op of the family that numba_cpu implements with a gradient,
torch for the rest (the CPU's fastest backend in this project's profiles)."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

# Config fields that size a model, or trade its memory for time alike under every mix: a
# profile of another size (or without checkpointing) still ranks the mixes.
SIZE_FIELDS = frozenset({"d_model", "n_layers", "n_heads", "causal", "vocab_size", "head", "n_classes", "seed",
                         "d_big", "ffn_hidden", "max_seq_len", "checkpoint_tokens"})
DEFAULT_BACKEND = "numba_cpu"


def default_mix(family: str, model: dict) -> dict:
    """numba_cpu for the family's ops where it has them with a gradient, torch elsewhere."""
    import backends
    import models

    cfg = models.config(family, **model)
    mix = {"default": "torch"}
    for op in models.FAMILIES[family].ops_used(cfg):
        try:
            impl = backends.get(op, DEFAULT_BACKEND)
        except (ValueError, KeyError, ImportError):
            continue  # numba_cpu lacks the op here (or cannot run): torch keeps it
        if impl.grad:
            mix[op] = DEFAULT_BACKEND
    return mix


def _calls_ops(family: str, model: dict) -> bool:
    import models

    return bool(models.FAMILIES[family].ops_used(models.config(family, **model)))


def _matches(record: dict, family: str, model: dict) -> bool:
    config = record.get("config") or {}
    return record.get("family") == family and all(config.get(k) == v for k, v in model.items() if k not in SIZE_FIELDS)


def _passed(record: dict) -> bool:
    gate = record.get("gate")
    return record.get("status") == "ok" and (gate is None or bool(gate.get("ok"))) and record.get("tokens_per_s")


def fastest_profiled(records: Iterable[dict], family: str, model: dict) -> tuple[str, float, int] | None:
    """(mix id, mean training tokens/s, mixes compared) of the fastest correct profiled mix
    of this family config, or None when the records hold none."""
    from bench.modelbench.peers import MODEL_PEERS

    speeds = defaultdict(list)
    for r in records:
        if r.get("kind") == "model" and r.get("mix_id") not in MODEL_PEERS and _matches(r, family, model) and _passed(r):
            speeds[r["mix_id"]].append(float(r["tokens_per_s"]))
    if not speeds:
        return None
    best = max(speeds, key=lambda m: sum(speeds[m]) / len(speeds[m]))
    return best, sum(speeds[best]) / len(speeds[best]), len(speeds)


def choose(family: str, model: dict, records: list[dict], given: str | None = None) -> tuple[dict, str]:
    """(mix, how it was chosen) for one cell."""
    from backends.mix import mix_id, parse_mix

    if given:
        return parse_mix(given), "--mix"
    if not _calls_ops(family, model):  # every mix is the same model: name it by what runs
        return {"default": "torch"}, "torch: the family calls no registry op"
    best = fastest_profiled(records, family, model)
    if best is not None:
        mix, speed, n = best
        return parse_mix(mix), f"profile: fastest of {n} correct mixes ({speed:,.0f} tokens/s)"
    mix = default_mix(family, model)
    return mix, f"default: {mix_id(mix)} ({DEFAULT_BACKEND} where the family's ops have it; no profile records)"
