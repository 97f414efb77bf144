"""``arsenal ops``: plan, gate, prepare, time interleaved and append every group of the
selection (bench.plan, bench.runner), then print the summary with its warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.commands import _args

NAME = "ops"
HELP = "time ops interleaved, append results, print a summary"
TIMING = True


def add_arguments(sp) -> None:
    _args.add_selection(sp, modes=True, suite=True, threads=True)
    sp.add_argument("--case", help="time this case instead of the suite's (KEY=VALUE,...)")
    sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")
    sp.add_argument("--budget", type=float, help="seconds of timing per group")
    sp.add_argument("--target", type=float, help="stop at this relative IQR")
    sp.add_argument("--settle-ms", type=float, help="sleep before each block, longer than OpenMP's spin (default 20)")
    sp.add_argument("--block-ms", type=float, help="aim of one block of repetitions (0: one call per block)")
    sp.add_argument("--fixed-order", action="store_true", help="do not alternate the order of the candidates")
    sp.add_argument("--refresh-roofline", action="store_true", help="measure the ceilings again first")
    sp.add_argument("--strict-gate", action="store_true",
                    help="benchmark-case gradients against the float64 reference, not the torch oracle "
                         "(slow for long sequences)")


def _timing():
    from bench.timing import TimingConfig

    return TimingConfig()


@dataclass(frozen=True)
class OpsConfig:
    selection: object  # bench.plan.Selection (imported lazily: the parser imports this module)
    out: str = "out/results.jsonl"
    threads: int | None = None  # torch's and Numba's (default: every core)
    timing: object = field(default_factory=_timing)  # bench.timing.TimingConfig
    refresh_roofline: bool = False
    strict_gate: bool = False  # benchmark-case gradients against the reference (bench.gate)


def time_ops(cfg: OpsConfig, console, checked: list[dict] = ()) -> list[dict]:
    """Gate, prepare, time and append every group, with a progress bar; returns records.
    ``checked``: rows of ``commands.check.rows`` whose results the gate reuses."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench import env, plan, roofline, runner, summary

    sel = cfg.selection
    threads = env.pin_process(cfg.threads)
    ceil = roofline.ceilings(sel.device, refresh=cfg.refresh_roofline)
    groups = plan.groups(sel)
    run_cfg = runner.RunConfig(device=sel.device, timing=cfg.timing, gate_case_grad=cfg.strict_gate)
    console.print(f"threads {threads}; roofline {roofline.cache_path(sel.device)}; {len(groups)} group(s); "
                  f"results -> {cfg.out}", markup=False, highlight=False)
    summary.warn_busy_ceilings(console, ceil)
    records = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("ops", total=len(groups))
        run = runner.Runner(run_cfg, out=cfg.out, ceilings=ceil,
                            log=lambda msg: bar.update(task, description=msg[:80]))
        for row in checked:
            for r in row.get("results", ()):
                run.gate.add(r, row["grad"])
        for group in groups:
            records += run.run_group(group)
            bar.advance(task)
        bar.update(task, description="ops")
    summary.print_summary(console, records)
    summary.warn_steal(console, records)
    summary.warn_disturbed(console, records)
    return records


def config(args) -> OpsConfig:
    return OpsConfig(selection=_args.selection(args), out=args.out, threads=args.threads,
                     timing=_args.timing_config(args), refresh_roofline=args.refresh_roofline,
                     strict_gate=args.strict_gate)


def run(args, console) -> int:
    from bench import summary

    return summary.exit_status(console, time_ops(config(args), console))
