"""The trainer (DESIGN.md 8.2): ``arsenal train``, and ``python -m bench.train`` under torchrun.

    from bench.train import TrainConfig, train
    result = train(TrainConfig(family="transformer", task="listops", steps=2000))

Modules, in the order a step meets them:
    config.py      TrainConfig: every field checked, frozen
    options.py     the command-line options (arsenal train, python -m bench.train)
    data.py        a task's batches epoch by epoch, or an LM stream as TBPTT chunks
    objective.py   model + head as one module (what DDP wraps): the summed loss
    run.py         set-up, the training loop, evaluation, records, the final test
    checkpoint.py  atomic, checksummed checkpoints and the RNG states
    __main__.py    python -m bench.train (torchrun's entry)

Importing this package is light: ``train``, ``TrainResult`` and ``decode`` load run.py
(torch) when first used.
"""

from __future__ import annotations

from bench.train.config import TrainConfig

_LAZY = {"train": "run", "TrainResult": "run", "decode": "run", "config_id": "run"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"bench.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'bench.train' has no attribute {name!r}")


__all__ = ["TrainConfig", "train", "TrainResult", "decode", "config_id"]
