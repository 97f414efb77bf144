"""``arsenal drift``: each recurrent op's forward error against float64 as T grows, per
backend and dtype (``bench.ops.drift``); prints the table and appends kind="drift" records."""

from __future__ import annotations

from bench.cli import UsageError
from bench.commands import _args

NAME = "drift"
HELP = "numerical drift: forward error against float64 as T grows, per backend and dtype"
TIMING = True  # interpreted backends would take hours at T = 100,000


def add_arguments(sp) -> None:
    sp.add_argument("--op", help="comma-separated ops (default: parallel_scan, gated_update, banked_attention)")
    sp.add_argument("--backend", help="comma-separated backend names (default: every backend that runs here)")
    sp.add_argument("--dtype", default="float32,bfloat16", help="comma-separated dtypes (default float32,bfloat16)")
    sp.add_argument("--T", default="100,1000,10000,100000",
                    help="comma-separated lengths (default 100,1000,10000,100000)")
    sp.add_argument("--device", help=_args.DEVICE_HELP)
    sp.add_argument("--threads", type=int, help="CPU threads for torch and Numba (default: every core)")
    sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")


def _lengths(text: str) -> tuple[int, ...]:
    try:
        Ts = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        Ts = ()
    if not Ts or min(Ts) < 1:
        raise UsageError(f"--T expects comma-separated positive integers (100,1000), got {text!r}")
    return Ts


def run(args, console) -> int:
    from rich.table import Table

    import backends
    from bench.ops import drift, dtypes
    from bench import env

    _args.check_device(args.device)
    ops = _args.names(args.op, list(dict.fromkeys(v[0] for v in drift.VARIANTS)), "op")
    names = _args.names(args.backend, list(backends.BACKENDS), "backend")
    dts = _args.names(args.dtype, dtypes.NAMES, "dtype")
    cfg = drift.DriftConfig(Ts=_lengths(args.T), dtypes=tuple(dts), device=args.device)
    env.pin_process(args.threads)
    records = drift.run(cfg, ops, names, out=args.out,
                        log=lambda msg: console.print(msg, markup=False, highlight=False, style="dim"))
    table = Table(title="Forward error against float64: max |got - ref| / max |ref| (* truth: the torch backend "
                        "in float64, the sequential reference being too slow there)")
    for col in ("op", "variant", "backend", "dtype", *(f"T={T:,}" for T in cfg.Ts)):
        table.add_column(col, justify="right" if col.startswith("T=") else "left")
    rows: dict[tuple, dict] = {}
    for r in records:
        mark = "*" if r["oracle"] != "reference" else ""
        text = "nonfinite" if r["status"] != "ok" else f"{r['error']:.2e}{mark}"
        rows.setdefault((r["op"], r["variant"] or "", r["backend"], r["dtype"]), {})[r["T"]] = text
    for key, by_T in rows.items():
        table.add_row(*key, *(by_T.get(T, "-") for T in cfg.Ts))
    console.print(table)
    console.print(f"{len(records)} record(s) appended to {args.out}", markup=False, highlight=False)
    return 0
