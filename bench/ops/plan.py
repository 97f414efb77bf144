"""The planner: a ``Selection`` (ops x candidates x cases x dtypes x modes on one device)
turned into planned items. ``arsenal ops``/``run``/``check``, the regression check, the
asv suite and the pytest-benchmark file all plan through here.

A pair that cannot run is planned all the same, as an item whose ``reason`` says why
(backend probe, device, dtype, no backward, a case that does not fit a peer): each
front end then records it, skips it or leaves it out, but none decides availability on
its own. A candidate that has no implementation of an op at all is not planned for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

import backends
from bench.ops import candidates
from bench.ops.cases import case_id, suite_cases


@dataclass(frozen=True)
class Selection:
    """What to run. ``names`` None: every candidate of each op (peers only with ``peers``);
    ``dtypes`` None: float32 for timings, every dtype a candidate takes for checks;
    ``case`` replaces the suite's cases (its keys belong to one op)."""

    ops: tuple[str, ...] = ()  # empty: every op, in the registry's order
    names: tuple[str, ...] | None = None
    peers: bool = False
    dtypes: tuple[torch.dtype, ...] | None = None
    modes: tuple[str, ...] = ("forward",)
    suite: str = "quick"
    case: dict | None = None
    device: str = "cpu"

    def op_names(self) -> tuple[str, ...]:
        return self.ops or tuple(backends.OPS)

    def chosen(self, op: str) -> list[str]:
        """The candidates of ``op`` in the order given (the interleaving order)."""
        have = candidates.of_op(op, peers=self.peers or self.names is not None)
        return list(have) if self.names is None else [n for n in self.names if n in have]

    def cases(self, op: str) -> list[dict]:
        return [dict(self.case)] if self.case is not None else suite_cases(self.suite, op, self.device)


@dataclass(frozen=True)
class Item:
    """One (op, candidate, case, dtype, mode) to gate, prepare and time."""

    op: str
    name: str
    case: dict
    dtype: torch.dtype
    mode: str
    device: str
    reason: str | None = None  # None: it can run here; otherwise why not

    @property
    def case_id(self) -> str:
        return case_id(self.case)

    @property
    def grad(self) -> bool:
        return self.mode != "forward"


@dataclass(frozen=True)
class Group:
    """The items timed together (interleaved): one op, case, dtype and mode."""

    op: str
    case: dict
    dtype: torch.dtype
    mode: str
    items: tuple[Item, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.items)


@dataclass(frozen=True)
class CheckItem:
    """One (op, candidate, dtype) for the correctness check over the op's test cases;
    ``dtype`` is None when the candidate is unavailable (its dtypes are unknown)."""

    op: str
    name: str
    dtype: torch.dtype | None
    grad: bool
    device: str
    reason: str | None = None


def groups(sel: Selection) -> list[Group]:
    """Every op, case, dtype and mode of the selection, in that nesting order."""
    out = []
    for op in sel.op_names():
        names = sel.chosen(op)
        if not names:
            continue
        for case in sel.cases(op):
            for dtype in sel.dtypes or (torch.float32,):
                for mode in sel.modes:
                    items = tuple(Item(op, n, dict(case), dtype, mode, sel.device,
                                       candidates.why_unavailable(op, n, sel.device, case=case, dtype=dtype,
                                                                  mode=mode))
                                  for n in names)
                    out.append(Group(op, dict(case), dtype, mode, items))
    return out


def items(sel: Selection) -> list[Item]:
    """The items of ``groups(sel)``, flat (op, case, dtype, mode, candidate)."""
    return [i for g in groups(sel) for i in g.items]


def checks(sel: Selection) -> list[CheckItem]:
    """(op, candidate, dtype) items for ``arsenal check``; an unavailable candidate is one
    item with its reason."""
    out = []
    for op in sel.op_names():
        for name in sel.chosen(op):
            reason = candidates.why_unavailable(op, name, sel.device)
            if reason is not None:
                out.append(CheckItem(op, name, None, False, sel.device, reason))
                continue
            c = candidates.get(name)
            out += [CheckItem(op, name, d, c.grad(op), sel.device) for d in c.dtypes(op)
                    if sel.dtypes is None or d in sel.dtypes]
    return out


def by_key(planned: Sequence[Item]) -> dict[tuple, Item]:
    """{(op, case_id, mode, name): item} for front ends that look items up (asv)."""
    return {(i.op, i.case_id, i.mode, i.name): i for i in planned}
