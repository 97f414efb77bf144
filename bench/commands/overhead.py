"""``arsenal overhead``: what the registry's argument checks cost per call
(``bench.ops.overhead``: raw ``impl.fn`` against the checked ``impl``, tiny cases, timed
interleaved); prints the table and appends kind="overhead" records."""

from __future__ import annotations

from bench.commands import _args

NAME = "overhead"
HELP = "per-call cost of the argument checks: raw vs checked on tiny cases"
TIMING = True


def add_arguments(sp) -> None:
    sp.add_argument("--op", help="comma-separated op names (default: all)")
    sp.add_argument("--backend", help="comma-separated backend names (default: every backend that runs here)")
    sp.add_argument("--dtype", default="float32", help="float32, float64 or bfloat16 (default float32)")
    sp.add_argument("--device", help=_args.DEVICE_HELP)
    sp.add_argument("--threads", type=int, help="CPU threads for torch and Numba (default: every core)")
    sp.add_argument("--budget", type=float, help="seconds of timing per (op, backend) (default 1.5)")
    sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")


def run(args, console) -> int:
    import dataclasses

    from rich.table import Table

    import backends
    from bench.ops import dtypes
    from bench import env
    from bench.ops import overhead as oh

    _args.check_device(args.device)
    ops = _args.names(args.op, list(backends.OPS), "op")
    names = _args.names(args.backend, list(backends.BACKENDS), "backend")
    (dtype,) = _args.names(args.dtype, dtypes.NAMES, "dtype")
    threads = env.pin_process(args.threads)
    cfg = oh.OverheadConfig(device=args.device, dtype=dtype)
    if args.budget is not None:
        cfg = dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, budget_s=args.budget))
    skipped = [(op, b, oh.why_not_timed(op, b, args.device, dtype)) for op in (ops or backends.OPS)
               for b in (names or backends.BACKEND_NAMES) if op in backends.BACKENDS[b].op_names()]
    records = oh.run(cfg, ops, names, out=args.out,
                     log=lambda msg: console.print(msg, markup=False, highlight=False, style="dim"))
    table = Table(title=f"Argument checks per call: {dtype} on {args.device}, tiny cases, torch threads "
                        f"{threads['torch']}, numba threads {threads['numba']} (medians, interleaved)")
    for col in ("op", "backend", "case", "raw us", "checked us", "overhead us", "95% interval us", "checks alone us",
                "steal %"):
        table.add_column(col, justify="left" if col in ("op", "backend", "case") else "right")
    for r in records:
        lo, hi = r["overhead_ci95_ns"]
        steal = "-" if r["steal_pct"] is None else f"{r['steal_pct']:.1f}"
        table.add_row(r["op"], r["backend"], r["case_id"], f"{r['raw_ns'] / 1e3:.1f}", f"{r['checked_ns'] / 1e3:.1f}",
                      f"{r['overhead_ns'] / 1e3:.1f}", f"[{lo / 1e3:.1f}, {hi / 1e3:.1f}]",
                      f"{r['checks_ns'] / 1e3:.1f}", steal)
    console.print(table)
    for op, b, reason in skipped:
        if reason is not None:
            console.print(f"not timed: {op}[{b}]: {reason}", markup=False, highlight=False)
    console.print(f"{len(records)} record(s) appended to {args.out}", markup=False, highlight=False)
    return 0
