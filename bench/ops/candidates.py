"""The table of candidates: everything the harness can time for an op, the project's
backends (``backends.BACKENDS``) and the benchmark peers (``bench.ops.peers.PEERS``).

This is the one place that tells a backend from a peer. Everything else asks a
``Candidate`` (kind, devices, dtypes and gradients per op, why it cannot run here, the
callable, its synchronize) or the functions below, which answer for both kinds alike:

    table()                        {name: Candidate}, backends first (registry order), then peers
    names(peers=True)              the names in that order
    of_op(op)                      the names that have ``op`` (available here or not)
    why_unavailable(op, name, device, case=, dtype=, mode=)   None or the reason
    implementation(op, name)       the callable that is checked and timed
    checked_callable(op, name)     the ``fn`` that backends.check.check_pair takes for it
    synchronizer(name, device)     waits for the candidate's queued work
    home_device(name)              the device it would run on here

The table is built on each call (cheap: nothing is imported that was not already), so a
peer added to ``PEERS`` at run time (tests) is a candidate at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import backends
from backends.registry import IMPLS, MODES
from bench.ops import peers
from bench.ops.cases import contract_case, fits_device
from bench.ops.dtypes import name as dtype_name

BACKEND, PEER = "backend", "peer"


class Unavailable(RuntimeError):
    """This (op, implementation, case, dtype, device, mode) cannot run here; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """One row of the table. Methods that take ``op`` assume ``op in self.ops()``."""

    name: str
    kind: str  # BACKEND or PEER

    @property
    def is_backend(self) -> bool:
        return self.kind == BACKEND

    def _backend(self):
        return backends.BACKENDS[self.name]

    def _peer(self) -> peers.Peer:
        return peers.PEERS[self.name]

    def ops(self) -> tuple[str, ...]:
        """Ops it has an implementation (a backend's file) or an adapter (a peer's) for."""
        return self._backend().op_names() if self.is_backend else tuple(self._peer().ops)

    def devices(self) -> tuple[str, ...]:
        """Device types it runs on when available."""
        return tuple(self._backend().devices()) if self.is_backend else tuple(self._peer().devices)

    def reason(self) -> str | None:
        """None, or why it cannot run on this machine at all (its probe)."""
        why = self._backend().why_unavailable() if self.is_backend else self._peer().probe()
        return None if why is None else f"{self.kind} '{self.name}' is unavailable: {why}"

    def dtypes(self, op: str) -> tuple[torch.dtype, ...]:
        """The dtypes it takes for ``op`` (a backend's must be available: its file is imported)."""
        return tuple(backends.get(op, self.name).dtypes) if self.is_backend else tuple(self._peer().dtypes)

    def grad(self, op: str) -> bool:
        """Whether it has a backward for ``op`` (a peer is differentiable through torch)."""
        if not self.is_backend:
            return True
        backends.get(op, self.name)  # imports the op file, which registers the Impl
        return IMPLS[(op, self.name)].grad

    def fits(self, op: str, case: dict) -> str | None:
        """None, or why this particular case is beyond it (a peer's layout limits)."""
        return None if self.is_backend else self._peer().fits(op, contract_case(case))

    def raw_implementation(self, op: str) -> Callable:
        """The registry's checked Impl, or the peer's adapter behind the contract's checks."""
        if self.is_backend:
            return backends.get(op, self.name)
        return _checked(op, self.name, self._peer().adapter(op))

    def synchronizer(self, device) -> Callable[[], None]:
        device = torch.device(device)
        if self.is_backend:
            sync = self._backend().synchronize
            return lambda: sync(device)
        if device.type == "cuda":
            return lambda: torch.cuda.synchronize(device)
        return lambda: None


def table() -> dict[str, Candidate]:
    rows = [Candidate(b, BACKEND) for b in backends.BACKEND_NAMES]
    rows += [Candidate(p, PEER) for p in peers.PEERS]
    return {c.name: c for c in rows}


def names(peers: bool = True) -> list[str]:
    return [n for n, c in table().items() if peers or c.is_backend]


def get(name: str) -> Candidate | None:
    return table().get(name)


def is_backend(name: str) -> bool:
    c = get(name)
    return c is not None and c.is_backend


def of_op(op: str, peers: bool = True) -> list[str]:
    """Backend and peer names that have ``op`` (available here or not), in table order."""
    if op not in backends.OPS:
        raise ValueError(f"unknown op '{op}'; ops are: {', '.join(backends.OPS)}")
    return [n for n, c in table().items() if (peers or c.is_backend) and op in c.ops()]


def why_unavailable(op: str, name: str, device="cpu", case: dict | None = None,
                    dtype: torch.dtype | None = None, mode: str | None = None) -> str | None:
    """None, or why ``name`` cannot run ``op`` here; ``case``, ``dtype`` and ``mode``
    narrow the question when given."""
    if op not in backends.OPS:
        return f"unknown op '{op}'; ops are: {', '.join(backends.OPS)}"
    if case is not None and (reason := fits_device(case, device)):
        return reason
    if mode is not None and mode not in MODES:
        return f"unknown mode '{mode}'; modes are: {', '.join(MODES)}"
    c = get(name)
    if c is None:
        return f"unknown implementation '{name}'; for '{op}' there are: {', '.join(of_op(op))}"
    if op not in c.ops():
        return (f"backend '{name}' has no implementation of '{op}'" if c.is_backend
                else f"peer '{name}' has no adapter for '{op}'")
    if (reason := c.reason()) is not None:
        return reason
    kind = torch.device(device).type
    if kind not in c.devices():
        return f"{c.kind} '{name}' runs on {' or '.join(c.devices()) or 'no device here'}, not {kind}"
    if dtype is not None and dtype not in c.dtypes(op):
        takes = ", ".join(dtype_name(d) for d in c.dtypes(op))
        return (f"{op}[{name}] takes {takes}, not {dtype_name(dtype)}" if c.is_backend
                else f"peer '{name}' takes {takes}, not {dtype_name(dtype)}")
    if mode in ("backward", "forward_backward") and not c.grad(op):
        return f"{op}[{name}] has no backward yet"
    if case is not None and (reason := c.fits(op, case)):
        return reason
    return None


def implementation(op: str, name: str) -> Callable:
    """The callable that ``name`` times for ``op``. Raises ``Unavailable`` with the reason."""
    reason = why_unavailable(op, name, device=home_device(name))
    if reason is not None:
        raise Unavailable(f"{op}[{name}]: {reason}")
    return get(name).raw_implementation(op)


def checked_callable(op: str, name: str) -> Callable | None:
    """What ``backends.check.check_pair`` takes as ``fn`` to check what is timed: None for
    a backend (check_pair looks the Impl up, with its gradient support), the adapter for a
    peer."""
    return None if is_backend(name) else implementation(op, name)


def synchronizer(name: str, device) -> Callable[[], None]:
    """Wait for the implementation's queued work on ``device`` (a no-op on the CPU)."""
    c = get(name)
    if c is None:
        raise ValueError(f"unknown implementation '{name}'; candidates: {', '.join(table())}")
    return c.synchronizer(device)


def home_device(name: str) -> str:
    """The device a candidate would run on here: CUDA when it only runs there and a GPU
    is present, else the CPU (where an unavailable one is asked its reason)."""
    c = get(name)
    devices = c.devices() if c is not None and c.reason() is None else ()
    if not devices or "cpu" in devices or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def _checked(op: str, name: str, raw: Callable) -> Callable:
    """A peer's adapter behind the contract's argument checks, like a backend's Impl."""
    spec = backends.OPS[op]

    def call(*args, **kwargs):
        spec.check(name, *args, **kwargs)
        return raw(*args, **kwargs)

    call.__name__ = op
    call.__qualname__ = f"{name}.{op}"
    call.__doc__ = spec.doc
    return call
