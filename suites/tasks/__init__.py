"""Tasks: what models are trained and profiled on (DESIGN.md section 8.1).

    from suites import tasks
    tasks.TASKS                                    # name -> task family (a class)
    task = tasks.get("listops", max_length=512)    # frozen config; bad fields -> ValueError
    for batch in task.batches("train", batch_size=32, seed=0): ...
    task.kind, task.vocab_size, task.n_classes, task.metric, task.anchors, task.seq_len
    task.generate(n, seed, **params)               # generators: raw examples

Batch layouts, splits and the LM stream interface are in base.py; data locations in
cache.py; the packages data is fetched from in packages.py.
"""

from __future__ import annotations

from . import config
from .base import IGNORE, SPLITS, ArrayTask, StreamTask, Task
from .brown import Retrieval, Text
from .hf import FineWeb, TinyStories
from .image import Image
from .induction import Induction
from .listops import ListOps
from .mqar import MQAR
from .pathfinder import PathX, Pathfinder
from .ptb import PTBChar, PTBWord
from .selective_copy import SelectiveCopy
from .shakespeare import Shakespeare

FAMILIES: tuple[type[Task], ...] = (
    ListOps, Pathfinder, PathX, Image, Text, Retrieval,        # LRA and its offline stand-ins
    SelectiveCopy, Induction, MQAR,                             # synthetic diagnostics
    PTBChar, PTBWord, Shakespeare, TinyStories, FineWeb,        # language-model streams
)
TASKS: dict[str, type[Task]] = {f.name: f for f in FAMILIES}


def get(name: str, **overrides) -> Task:
    """The task `name` with its config's defaults replaced by `overrides`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    family = TASKS[name]
    return family(config.build(name, family.Config, overrides))


__all__ = ["TASKS", "FAMILIES", "get", "Task", "ArrayTask", "StreamTask", "SPLITS", "IGNORE"]
