"""What the op commands share: their options, and the translation of parsed options into
the frozen configs of bench/ (``plan.Selection``, ``TimingConfig``). Names are checked
here, against the candidate table, so a bad name is a usage error (exit 2) listing the
valid ones. Light at import (the parser is built before torch may be imported)."""

from __future__ import annotations

from bench.ops import dtypes
from bench.cli import UsageError
from bench.values import parse_pairs

DEVICE_HELP = "cpu or cuda[:N] (default: cuda when a GPU is present, else cpu)"


def names(text: str | None, valid, what: str) -> list[str] | None:
    """A comma-separated list checked against ``valid``; None when not given."""
    if text is None:
        return None
    got = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in got if n not in valid]
    if bad or not got:
        raise UsageError(f"unknown {what} {', '.join(map(repr, bad)) or repr(text)}; valid: {', '.join(valid)}")
    return got


def parse_case(text: str) -> dict:
    """"B=4,T=256,D=64,bound=1.0" -> {"B": 4, "T": 256, "D": 64, "bound": 1.0}."""
    try:
        if not text.strip():
            raise ValueError(f"--case: expected KEY=VALUE pairs separated by commas, got {text!r}")
        return parse_pairs(text, "--case")
    except ValueError as exc:
        raise UsageError(f"{exc} (B=4,T=256,D=64)") from None


def check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise UsageError(f"--device {device!r}: {exc}") from None
    if kind not in ("cpu", "cuda"):
        raise UsageError(f"--device expects cpu or cuda[:N], got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available here")


def selection(args, default_modes=("forward",)):
    """--op --backend --dtype --peers --device (and, where the command has them, --mode
    --suite --case) as a ``plan.Selection``."""
    import backends
    from backends.registry import MODES
    from bench.ops import candidates
    from bench.ops.plan import Selection
    from suites.op_shapes import SUITES

    check_device(args.device)
    ops = names(args.op, list(backends.OPS), "op")
    chosen = names(args.backend, candidates.names(), "backend or peer")
    dts = names(args.dtype, dtypes.NAMES, "dtype")
    modes = names(getattr(args, "mode", None), MODES, "mode") or list(default_modes)
    suite, case = getattr(args, "suite", None) or "quick", None
    if getattr(args, "case", None):
        if ops is None or len(ops) != 1:
            raise UsageError("--case needs exactly one --op (a case's keys belong to one op)")
        case = parse_case(args.case)
    elif suite not in SUITES:
        raise UsageError(f"unknown suite {suite!r}; valid: {', '.join(SUITES)}")
    return Selection(ops=tuple(ops or ()), names=None if chosen is None else tuple(chosen),
                     peers=getattr(args, "peers", False),
                     dtypes=None if dts is None else tuple(dtypes.to_torch(d) for d in dts),
                     modes=tuple(modes), suite=suite, case=case, device=args.device)


def add_selection(sp, modes: bool = False, suite: bool = False, threads: bool = False) -> None:
    sp.add_argument("--op", help="comma-separated op names (default: all)")
    sp.add_argument("--backend", help="comma-separated backend or peer names (default: every backend)")
    sp.add_argument("--dtype", help=f"comma-separated dtypes ({', '.join(dtypes.NAMES)})")
    sp.add_argument("--peers", action="store_true", help="include the peers (torch_compile, public kernels)")
    sp.add_argument("--device", help=DEVICE_HELP)
    if modes:
        sp.add_argument("--mode", help="comma-separated modes (forward, backward, forward_backward; default forward)")
    if suite:
        sp.add_argument("--suite", default="quick", help="quick, full or stable (suites/op_shapes.py)")
    if threads:
        sp.add_argument("--threads", type=int, help="CPU threads for torch and Numba (default: every core)")


def timing_config(args):
    """--budget --target --settle-ms --block-ms --fixed-order as a ``TimingConfig``."""
    from dataclasses import replace

    from bench.timing import TimingConfig

    changes = {"budget_s": args.budget, "target_rel_iqr": args.target,
               "settle_s": None if args.settle_ms is None else args.settle_ms / 1e3,
               "block_s": None if args.block_ms is None else args.block_ms / 1e3}
    cfg = replace(TimingConfig(), **{k: v for k, v in changes.items() if v is not None})
    return replace(cfg, alternate=False) if args.fixed_order else cfg
