"""The op calls the model grids make (suites/model_runs.py): each family of the grid is
run forward once at each of its (B, T) under an OpTable whose ops record their
arguments and compute with the torch backend; each distinct call (op, shapes, options)
becomes a Call whose inputs are those arguments as meta tensors.

The models run on the meta device (no data, seconds) where they can; a family whose
forward reads data on the host (``.item()``: the ACT halting of the stackformer, the
fastlane's checks) runs on the CPU with real weights instead. Grids: ``main`` (README's
``arsenal run``) and ``quick`` (``arsenal models``' default); the longer grids run the
same families at more lengths, which change the launchers' choices only through T and
B*D, which the op suites' long cases already cover.

A family that loops over tokens in Python (suites/model_runs.PER_TOKEN) and needs the
CPU makes the same calls at every length (one token at a time: [B, 1, ...]), and runs
on the CPU at about 0.4 s a token (the stackformer at T=256: 110 s); it is run at
SHORT lengths instead, and its calls are kept only when both lengths make the same
ones (else it runs at its T).
"""

from __future__ import annotations

from bench.gpu_compile.specs import Call

GRIDS = ("main", "quick")
VOCAB = 256  # the byte-level tasks' vocabulary
SHORT = (4, 8)  # the lengths a per-token family is run at on the CPU (see above)


class _Recorder:
    """An op of the OpTable that records (op, arguments) and runs the torch backend's
    implementation (unchecked, so that meta tensors pass)."""

    def __init__(self, op: str, impl, calls: dict):
        self.op, self.impl, self.calls = op, impl, calls
        self.signature = impl._spec.signature

    def __getattr__(self, name):  # grad, dtypes, ... as the Impl has them
        return getattr(self.impl, name)

    def __call__(self, *args, **kwargs):
        import torch

        bound = self.signature.bind(*args, **kwargs).arguments
        described = {k: (tuple(v.shape), str(v.dtype)) if isinstance(v, torch.Tensor) else
                     tuple((tuple(t.shape), str(t.dtype)) if isinstance(t, torch.Tensor) else t for t in v)
                     if isinstance(v, tuple) else v for k, v in bound.items()}
        key = (self.op, repr(sorted(described.items())))
        if key not in self.calls:
            self.calls[key] = (self.op, {k: _meta(v) for k, v in bound.items()})
        return self.impl.fn(*args, **kwargs)


def _meta(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("meta")
    if isinstance(value, tuple):
        return tuple(_meta(v) for v in value)
    return value


def _forward(family: str, overrides: dict, B: int, T: int, ops, device: str) -> None:
    import torch

    import models

    cfg = models.config(family, vocab_size=VOCAB, **overrides)
    with torch.device(device), torch.no_grad():
        model = models.build(cfg, ops)
        model(torch.zeros(B, T, dtype=torch.long))


def _on_cpu(family: str, config_id: str, overrides: dict, B: int, T: int, impls_for, calls: dict) -> None:
    """The family forward on the CPU with real weights, its calls added to ``calls``; a
    per-token family at the SHORT lengths when they agree (see the module docstring)."""
    from suites.model_runs import PER_TOKEN

    if (family, config_id) in PER_TOKEN:
        found = []
        for t in SHORT:
            found.append({})
            _forward(family, overrides, B, t, impls_for(found[-1], "cpu"), "cpu")
        if all(f.keys() == found[0].keys() for f in found):
            for key, value in found[0].items():
                calls.setdefault(key, value)
            return
    _forward(family, overrides, B, T, impls_for(calls, "cpu"), "cpu")


def model_calls(grids=GRIDS) -> list[Call]:
    """The distinct op calls of the model grids' families at their shapes."""
    import backends
    from backends.mix import OpTable
    from suites.model_runs import SUITES

    def impls_for(calls: dict, device: str):
        """An OpTable recording into ``calls``; its device is the model's (a family may
        make its tensors on ops.device)."""
        impls = {op: _Recorder(op, backends.BACKENDS["torch"].impl(op), calls) for op in backends.OPS}
        return OpTable(mix={op: "torch" for op in backends.OPS}, device=device, _impls=impls)

    calls: dict = {}
    sources: dict = {}
    runs = {(r.family, r.config_id, r.B, r.T): r for grid in grids for r in SUITES[grid]}
    for (family, config_id, B, T), run in runs.items():
        before = set(calls)
        try:
            _forward(family, run.overrides, B, T, impls_for(calls, "meta"), "meta")
        except (RuntimeError, NotImplementedError):  # reads data on the host: real weights on the CPU
            _on_cpu(family, config_id, run.overrides, B, T, impls_for, calls)
        for key in set(calls) - before:
            sources[key] = f"model {family}/{config_id} B{B}-T{T}"
    return [Call(op, {}, sources[key], inputs=inputs) for key, (op, inputs) in calls.items()]
