"""A selection of ops timed end to end, with a progress bar (a line per group when the
output is not a terminal): plan, gate, prepare, time
interleaved and append every group (bench.ops.plan, bench.ops.runner), then print the
summary with its warnings. ``arsenal ops`` and ``arsenal run`` call ``time_ops``."""

from __future__ import annotations

from dataclasses import dataclass, field


def _timing():
    from bench.timing import TimingConfig

    return TimingConfig()


@dataclass(frozen=True)
class OpsConfig:
    selection: object  # bench.ops.plan.Selection (imported lazily: the parser imports this module)
    out: str = "out/results.jsonl"
    threads: int | None = None  # torch's and Numba's (default: every core)
    timing: object = field(default_factory=_timing)  # bench.timing.TimingConfig
    refresh_roofline: bool = False
    strict_gate: bool = False  # benchmark-case gradients against the reference (bench.ops.gate)


def time_ops(cfg: OpsConfig, console, checked: list[dict] = ()) -> list[dict]:
    """Gate, prepare, time and append every group, with a progress bar; returns records.
    ``checked``: rows of ``bench.ops.check.rows`` whose results the gate reuses."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench import env, roofline
    from bench.progress import ProgressLines

    from bench.ops import plan, runner, summary

    sel = cfg.selection
    threads = env.pin_process(cfg.threads)
    ceil = roofline.ceilings(sel.device, refresh=cfg.refresh_roofline)
    groups = plan.groups(sel)
    run_cfg = runner.RunConfig(device=sel.device, timing=cfg.timing, gate_case_grad=cfg.strict_gate)
    console.print(f"threads {threads}; roofline {roofline.cache_path(sel.device)}; {len(groups)} group(s); "
                  f"results -> {cfg.out}", markup=False, highlight=False)
    summary.warn_busy_ceilings(console, ceil)
    records = []
    lines = ProgressLines(console, "ops group", len(groups))  # off a terminal: the bar's plain-text stand-in
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=lines.on) as bar:
        task = bar.add_task("ops", total=len(groups))
        run = runner.Runner(run_cfg, out=cfg.out, ceilings=ceil,
                            log=lambda msg: bar.update(task, description=msg[:80]))
        for row in checked:
            for r in row.get("results", ()):
                run.gate.add(r, row["grad"])
        for group in groups:
            records += run.run_group(group)
            bar.advance(task)
            lines.step(runner.group_label(group))
        bar.update(task, description="ops")
    summary.print_summary(console, records)
    summary.warn_steal(console, records)
    summary.warn_disturbed(console, records)
    return records
