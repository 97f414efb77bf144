"""``arsenal run``: README's main job. The correctness check of every available backend,
the quick op suite with peers (forward and forward+backward), a quick model profile
(suites/model_runs.py "main": every family once, every mix, torch.compile of the whole
model as a peer) into ``--out``, then the HTML report of that file."""

from __future__ import annotations

from bench.commands import _args

NAME = "run"
HELP = "the main job: check, then the quick suite with peers"
TIMING = True
REPORT = "out/report.html"


def add_arguments(sp) -> None:
    sp.add_argument("--out", default="out/results.jsonl")
    sp.add_argument("--threads", type=int)
    sp.add_argument("--device", help=_args.DEVICE_HELP)
    sp.add_argument("--no-models", action="store_true", help="skip the quick model profile")


def write_report(out: str, console) -> None:
    """The report of ``out`` when the reports package has ``write_report``; nothing otherwise."""
    import reports

    if not hasattr(reports, "write_report"):
        return
    try:
        path = reports.write_report([out], REPORT)
    except Exception as exc:  # the measurements are appended already; a report is a view of them
        console.print(f"report not written: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return
    console.print(f"report: {path or REPORT}", markup=False, highlight=False)


def run(args, console) -> int:
    import torch

    from bench import env

    from bench.ops import check, summary, time_ops
    from bench.ops.plan import Selection
    from suites.op_shapes import DEFAULT_MODES

    _args.check_device(args.device)
    env.pin_process(args.threads)
    status, checked = check.check(Selection(device=args.device), console)
    timed = Selection(peers=True, dtypes=(torch.float32,), modes=DEFAULT_MODES, suite="quick", device=args.device)
    records = time_ops.time_ops(time_ops.OpsConfig(selection=timed, out=args.out, threads=args.threads), console,
                                checked=checked)
    status = max(status, summary.exit_status(console, records))
    if not args.no_models:
        from bench.modelbench import grid
        from bench.modelbench.bench import ModelBench, ModelBenchConfig
        from suites.model_runs import SUITES

        console.print("quick model profile (arsenal models --suite main)", markup=False, highlight=False)
        from rich.markup import escape

        bench = ModelBench(ModelBenchConfig(device=args.device, isolate=True), out=args.out,
                           log=lambda msg: console.print(f"[dim]{escape(msg)}[/]", highlight=False),
                           groups=len(SUITES["main"]))
        found = grid.profile(SUITES["main"], bench, console)
        status = max(status, int(any(r["status"] in ("incorrect", "error") for r in found)))
    write_report(args.out, console)
    return status
