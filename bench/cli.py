"""The ``arsenal`` command (also ``python -m bench``): a thin layer over bench/.

    arsenal list                         op x backend coverage, with every reason
    arsenal check [--op] [--backend] [--dtype] [--peers] [--simulate]
    arsenal ops [--suite quick|full|stable] [--op] [--backend] [--peers] [--mode] [--dtype]
                [--case B=4,T=256,D=64] [--out out/results.jsonl]
    arsenal compare OLD.jsonl NEW.jsonl
    arsenal profile --op OP --backend NAME [--case ...]
    arsenal roofline [--refresh]
    arsenal run                          check, then the quick suite with peers

Lists are comma-separated. Exit codes: 0 success, 1 a failed check of one of this
project's backends (or, with ``compare --fail-on-slower``, a slower result; with ``check
--peers``, a failed peer), 2 bad usage. In ``ops`` and ``run`` a peer that fails the
correctness gate is recorded "incorrect" and reported, not timed, and the exit code stays 0.

Environment: torch, Triton and Numba read their settings at import, so ``main`` sets
them before importing anything heavy: ``--simulate`` (list, check) turns on Triton's
interpreter and Numba's CUDA simulator so the GPU backends are checked on the CPU; the
timing commands turn them off (an interpreter's timings mean nothing). OpenMP keeps its
default wait policy (bench/timing.py explains why and how its spinning is handled).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SIMULATION = {"TRITON_INTERPRET": "1", "NUMBA_ENABLE_CUDASIM": "1"}
TIMING_COMMANDS = ("ops", "run", "profile", "roofline")
DEVICE_HELP = "cpu or cuda[:N] (default: cuda when a GPU is present, else cpu)"
MODES = ("forward", "backward", "forward_backward")
DTYPES = ("float32", "float64", "bfloat16")
RUN_MODES = ("forward", "forward_backward")  # what `arsenal run` times


class UsageError(ValueError):
    """Bad names or values on the command line (exit code 2)."""


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def _names(text: str | None, valid, what: str) -> list[str] | None:
    """A comma-separated list checked against ``valid``; None when not given."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise UsageError(f"unknown {what} {', '.join(map(repr, bad)) or repr(text)}; valid: {', '.join(valid)}")
    return names


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_case(text: str) -> dict:
    """"B=4,T=256,D=64,bound=1.0" -> {"B": 4, "T": 256, "D": 64, "bound": 1.0}."""
    case = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--case expects KEY=VALUE pairs separated by commas (B=4,T=256,D=64), got {text!r}")
        case[key.strip()] = _value(value.strip())
    return case


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arsenal", description="Arsenal: kernels of fast recurrent sequence models, "
                                "checked against float64 references and timed against the machine's roofline.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, simulate=False, timing=False):
        sp.add_argument("--op", help="comma-separated op names (default: all)")
        sp.add_argument("--backend", help="comma-separated backend or peer names (default: every backend)")
        sp.add_argument("--dtype", help=f"comma-separated dtypes ({', '.join(DTYPES)})")
        sp.add_argument("--peers", action="store_true", help="include the peers (torch_compile, public kernels)")
        sp.add_argument("--device", help=DEVICE_HELP)
        if simulate:
            sp.add_argument("--simulate", action="store_true",
                            help="run Triton in its interpreter and Numba CUDA in its simulator (CPU)")
        if timing:
            sp.add_argument("--threads", type=int, help="CPU threads for torch and Numba (default: every core)")

    sp = sub.add_parser("list", help="the op x backend coverage matrix, with the reason for every gap")
    sp.add_argument("--simulate", action="store_true", help="as for check")

    sp = sub.add_parser("check", help="the correctness gate for every available pair")
    common(sp, simulate=True)

    def ops_options(sp):
        common(sp, timing=True)
        sp.add_argument("--suite", default="quick", help="quick, full or stable (suites/op_shapes.py)")
        sp.add_argument("--mode", help=f"comma-separated modes ({', '.join(MODES)}; default forward)")
        sp.add_argument("--case", help="time this case instead of the suite's (KEY=VALUE,...)")
        sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")
        sp.add_argument("--budget", type=float, help="seconds of timing per group")
        sp.add_argument("--target", type=float, help="stop at this relative IQR")
        sp.add_argument("--settle-ms", type=float, help="sleep before each block, longer than OpenMP's spin (default 20)")
        sp.add_argument("--block-ms", type=float, help="aim of one block of repetitions (0: one call per block)")
        sp.add_argument("--fixed-order", action="store_true", help="do not alternate the order of the candidates")
        sp.add_argument("--refresh-roofline", action="store_true", help="measure the ceilings again first")
        sp.add_argument("--strict-gate", action="store_true",
                        help="benchmark-case gradients against the float64 reference, not the torch oracle (slow for long sequences)")

    ops_options(sub.add_parser("ops", help="time ops interleaved, append results, print a summary"))

    sp = sub.add_parser("compare", help="changes between two result files (Mann-Whitney U)")
    sp.add_argument("old")
    sp.add_argument("new")
    sp.add_argument("--alpha", type=float, default=0.01)
    sp.add_argument("--threshold", type=float, default=0.05, help="relative change that matters")
    sp.add_argument("--fail-on-slower", action="store_true", help="exit 1 if anything is slower")

    sp = sub.add_parser("profile", help="a torch.profiler trace and per-op table of one pair")
    sp.add_argument("--op", required=True)
    sp.add_argument("--backend", required=True, help="a backend or a peer")
    sp.add_argument("--suite", default="quick")
    sp.add_argument("--case", help="KEY=VALUE,... (default: the suite's first case)")
    sp.add_argument("--dtype", default="float32")
    sp.add_argument("--mode", default="forward")
    sp.add_argument("--device", help=DEVICE_HELP)
    sp.add_argument("--steps", type=int, default=10)
    sp.add_argument("--out-dir", default="out/profile")
    sp.add_argument("--threads", type=int)

    sp = sub.add_parser("roofline", help="print the machine's ceilings (measured once, cached)")
    sp.add_argument("--refresh", action="store_true")
    sp.add_argument("--device", help=DEVICE_HELP)
    sp.add_argument("--threads", type=int)

    sp = sub.add_parser("run", help="the main job: check, then the quick suite with peers")
    sp.add_argument("--out", default="out/results.jsonl")
    sp.add_argument("--threads", type=int)
    sp.add_argument("--device", help=DEVICE_HELP)

    from bench import commands

    for mod in commands.load():
        mod.add_arguments(sub.add_parser(mod.NAME, help=mod.HELP))
    return p


# ---------------------------------------------------------------------------
# Environment, set before torch, Triton or Numba is imported
# ---------------------------------------------------------------------------


def configure_environment(args, notes: list[str]) -> None:
    if "torch" in sys.modules:  # imported already (in-process use, tests): nothing can change now
        return
    if getattr(args, "simulate", False):
        os.environ.update(SIMULATION)
    elif args.command in TIMING_COMMANDS or _module_of(args.command, "TIMING", False):
        for k in SIMULATION:
            if os.environ.pop(k, None) is not None:
                notes.append(f"{k} unset: simulated backends are not timed")


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False)


def _check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise UsageError(f"--device {device!r}: {exc}") from None
    if kind not in ("cpu", "cuda"):
        raise UsageError(f"--device expects cpu or cuda[:N], got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available here")


def _all_names(peers: bool) -> list[str]:
    import backends
    from bench.peers import PEERS

    return list(backends.BACKEND_NAMES) + (list(PEERS) if peers else [])


def _selection(args):
    """(ops, names, dtypes or None) from --op/--backend/--dtype/--peers."""
    import backends
    from bench.peers import PEERS

    _check_device(args.device)
    ops = _names(args.op, list(backends.OPS), "op") or list(backends.OPS)
    names = _names(args.backend, list(backends.BACKEND_NAMES) + list(PEERS), "backend or peer")
    dtypes = _names(args.dtype, DTYPES, "dtype")
    return ops, names or _all_names(args.peers), dtypes


def cmd_list(args, console) -> int:
    from rich.table import Table

    import backends
    from bench import prepare as prep
    from bench.peers import PEERS

    names = _all_names(True)
    table = Table(title="Coverage: op x backend (and peers)")
    table.add_column("op")
    for n in names:
        table.add_column(n + (" (peer)" if n in PEERS else ""))
    reasons = {}
    for op in backends.OPS:
        row = [op]
        for n in names:
            reason = prep.why_unavailable(op, n, _home_device(n))
            if n not in prep.candidates(op):
                row.append("-")
            elif reason is None:
                row.append("[green]yes[/]")
            else:
                row.append(f"[yellow]no [{reasons.setdefault(reason, len(reasons) + 1)}][/]")
        table.add_row(*row)
    console.print(table)
    console.print("  - no implementation: no file backends/<backend>/<op>.py, or no adapter in the peer",
                  markup=False, highlight=False)
    for reason, tag in reasons.items():
        console.print(f"  [{tag}] {reason}", markup=False, highlight=False)
    return 0


def _home_device(name: str) -> str:
    """The device a backend or peer would run on here: CUDA when it only runs there."""
    import torch

    import backends
    from bench.peers import PEERS

    devices = backends.BACKENDS[name].devices() if name in backends.BACKENDS else PEERS[name].devices
    if "cpu" in devices or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def check_rows(ops, names, dtypes, device):
    """One row per (op, implementation, dtype): check_pair over the op's test cases."""
    import backends
    from backends.check import check_pair
    from backends.registry import DTYPE_NAMES, IMPLS
    from bench import prepare as prep
    from bench.peers import PEERS

    for op in ops:
        for name in names:
            if name not in prep.candidates(op):
                continue
            reason = prep.why_unavailable(op, name, device)
            if reason is not None:
                yield {"op": op, "backend": name, "dtype": "-", "status": "skipped", "reason": reason}
                continue
            if name in backends.BACKENDS:
                fn, have, grad = None, backends.get(op, name).dtypes, IMPLS[(op, name)].grad
            else:
                fn, have, grad = prep.implementation(op, name), PEERS[name].dtypes, True
            for dtype in have:
                dname = DTYPE_NAMES[dtype]
                if dtypes is not None and dname not in dtypes:
                    continue
                res = [check_pair(op, name, case, dtype, device, grad=grad, fn=fn)
                       for case in backends.OPS[op].test_cases]
                fwd = [r.forward_error for r in res if r.forward_error == r.forward_error]
                grads = [r.grad_error for r in res if r.grad_error is not None]
                yield {"op": op, "backend": name, "dtype": dname, "results": res, "grad": grad,
                       "status": "ok" if all(r.ok for r in res) else "FAIL",
                       "passed": f"{sum(r.ok for r in res)}/{len(res)}",
                       "forward_error": max(fwd) if fwd else None, "grad_error": max(grads) if grads else None,
                       "seconds": sum(r.seconds for r in res),
                       "problems": [f"{r.case}: {p}" for r in res for p in r.problems]}


def cmd_check(args, console, rows: list | None = None) -> int:
    """Print the gate's table; ``rows`` (when given) receives every row checked."""
    from rich.table import Table

    ops, names, dtypes = _selection(args)
    table = Table(title="Correctness gate (error = worst |got - ref| / tolerance; <= 1 passes)")
    for col in ("op", "backend", "dtype", "status", "cases", "forward err", "grad err", "seconds"):
        table.add_column(col)
    failed, problems, skipped = 0, [], {}
    for row in check_rows(ops, names, dtypes, args.device):
        if row["status"] == "skipped":
            skipped.setdefault((row["backend"], row["reason"]), []).append(row["op"])
            continue
        if rows is not None:
            rows.append(row)
        failed += row["status"] != "ok"
        problems += [f"{row['op']}[{row['backend']}] {row['dtype']}: {p}" for p in row["problems"]]
        style = "green" if row["status"] == "ok" else "bold red"
        table.add_row(row["op"], row["backend"], row["dtype"], f"[{style}]{row['status']}[/]", row["passed"],
                      _num(row["forward_error"], ".2g"), _num(row["grad_error"], ".2g"), f"{row['seconds']:.1f}")
    console.print(table)
    for (name, reason), skipped_ops in skipped.items():
        console.print(f"skipped {name} ({', '.join(skipped_ops)}): {reason}", markup=False, highlight=False)
    for p in problems[:50]:
        console.print(p, markup=False, highlight=False)
    console.print(f"{failed} failing pair(s)" if failed else "all checked pairs pass")
    return 1 if failed else 0


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _timing_config(args):
    from dataclasses import replace

    from bench.timing import TimingConfig

    cfg = TimingConfig()
    changes = {"budget_s": args.budget, "target_rel_iqr": args.target,
               "settle_s": None if args.settle_ms is None else args.settle_ms / 1e3,
               "block_s": None if args.block_ms is None else args.block_ms / 1e3}
    cfg = replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    if args.fixed_order:
        cfg = replace(cfg, alternate=False)
    return cfg


def run_ops(args, console, ops, names, dtypes, modes, cases, checked: list | None = None) -> list[dict]:
    """Gate, prepare, time and append every group, with a progress bar; returns records.
    ``checked``: rows of ``check_rows`` whose results the gate reuses."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench import env, roofline, runner

    threads = env.pin_process(args.threads)
    ceil = roofline.ceilings(args.device, refresh=getattr(args, "refresh_roofline", False))
    groups = runner.plan(ops, names, cases, dtypes, modes)
    cfg = runner.RunConfig(device=args.device, timing=_timing_config(args),
                           gate_case_grad=getattr(args, "strict_gate", False))
    console.print(f"threads {threads}; roofline {roofline.cache_path(args.device)}; {len(groups)} group(s); "
                  f"results -> {args.out}", markup=False, highlight=False)
    _warn_busy(console, ceil)
    records = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("ops", total=len(groups))
        run = runner.Runner(cfg, out=args.out, ceilings=ceil,
                            log=lambda msg: bar.update(task, description=msg[:80]))
        for row in checked or ():
            for r in row.get("results", ()):
                run.gate.add(r, row["grad"])
        for group in groups:
            records += run.run_group(group)
            bar.advance(task)
        bar.update(task, description="ops")
    print_summary(console, records)
    _warn_steal(console, records)
    return records


STEAL_WARN_PCT = 5.0  # warn when the hypervisor took more of the CPU than this while timing


def _warn_steal(console, records: list[dict]) -> None:
    steals = [r["steal_pct"] for r in records if r.get("steal_pct") is not None]
    if steals and max(steals) > STEAL_WARN_PCT:
        console.print(f"note: the hypervisor took up to {max(steals):.0f}% of the CPU time while groups were timed "
                      f"(median {sorted(steals)[len(steals) // 2]:.0f}%; per record: steal_pct): other virtual "
                      "machines shared the cores, and spinning OpenMP workers suffer most from it; repeat the run "
                      "and compare (arsenal compare)", markup=False, highlight=False)


def print_summary(console, records: list[dict]) -> None:
    """Per op: each backend's median, spread, figures, % of roofline and speedups; the
    pairs that could not run are listed under the table with their reasons."""
    from rich.table import Table

    by_op = {}
    for r in records:
        by_op.setdefault(r["op"], []).append(r)
    for op, recs in by_op.items():
        table = Table(title=op)
        for col in ("case", "dtype", "mode", "backend", "status", "median", "IQR", "GB/s", "GFLOP/s",
                    "% roofline", "x torch", "x compile", "compile s"):
            table.add_column(col, justify="left" if col in ("case", "dtype", "mode", "backend", "status") else "right")
        skipped = {}
        for r in recs:
            status = r["status"]
            if status == "unavailable":
                skipped.setdefault(r["error"], set()).add(r["backend"])
                continue
            timed = r.get("median_ns") is not None
            roof = {"ok": _num(r.get("pct_roofline"), ".1f"), "wrong_model": "[red]wrong model[/]"}.get(status, "-")
            table.add_row(r["case_id"], r["dtype"], r["mode"], r["backend"],
                          status if timed else f"[red]{status}[/]", _duration(r.get("median_ns")),
                          _num(r.get("rel_iqr") and 100 * r["rel_iqr"], ".0f") + "%" if timed else "-",
                          _num(r.get("gbps"), ".2f"), _num(r.get("gflops"), ".2f"), roof,
                          _speedup(r, "torch"), _speedup(r, "torch_compile"), _num(r.get("compile_seconds"), ".2f"))
        console.print(table)
        for r in recs:
            if r["status"] not in ("ok", "unavailable"):
                console.print(f"  {r['backend']} {r['case_id']} {r['mode']}: {r['status']}: {r['error']}",
                              markup=False, highlight=False)
        for reason, names in skipped.items():
            console.print(f"  not run ({', '.join(sorted(names))}): {reason}", markup=False, highlight=False)


def _speedup(r: dict, base: str) -> str:
    """"1.86 (1.71-2.02)": the ratio and its bootstrap 95% interval."""
    x, ci = r.get(f"speedup_vs_{base}"), r.get(f"speedup_vs_{base}_ci95")
    if x is None:
        return "-"
    return f"{x:.2f}" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")


def _duration(ns) -> str:
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.0f} ns"


def _cases_for(args):
    from suites import op_shapes

    if args.case:
        case = parse_case(args.case)
        return lambda op: [case]
    if args.suite not in op_shapes.SUITES:
        raise UsageError(f"unknown suite {args.suite!r}; valid: {', '.join(op_shapes.SUITES)}")
    return lambda op: op_shapes.cases(args.suite, op, args.device)


def cmd_ops(args, console) -> int:
    ops, names, dtypes = _selection(args)
    modes = _names(args.mode, MODES, "mode") or ["forward"]
    if args.case and len(ops) != 1:
        raise UsageError("--case needs exactly one --op (a case's keys belong to one op)")
    cases = _cases_for(args)
    records = run_ops(args, console, ops, names, dtypes or ["float32"], modes, cases)
    return _status(console, records)


def cmd_compare(args, console) -> int:
    from rich.table import Table

    from bench import compare, results

    for path in (args.old, args.new):
        if not Path(path).exists():
            raise UsageError(f"no such results file: {path}")
    changes = compare.compare(results.read(args.old), results.read(args.new), args.alpha, args.threshold)
    table = Table(title=f"{args.old} -> {args.new} (ratio = new / old median; Mann-Whitney U p)")
    for col in ("op", "backend", "case", "dtype", "mode", "verdict", "ratio", "p", "old", "new"):
        table.add_column(col)
    colors = {"faster": "green", "slower": "bold red", "unchanged": "white", "ambiguous": "yellow"}
    for c in changes:
        lab = c.label
        table.add_row(lab["op"], lab["backend"], lab["case_id"], lab["dtype"], lab["mode"],
                      f"[{colors.get(c.verdict, 'cyan')}]{c.verdict}[/]" + (f" {c.note}" if c.note else ""),
                      _num(c.ratio, ".3f"), _num(c.p, ".2g"), _duration(c.old_median_ns), _duration(c.new_median_ns))
    console.print(table)
    slower = [c for c in changes if c.verdict == "slower"]
    return 1 if (args.fail_on_slower and slower) else 0


def cmd_profile(args, console) -> int:
    import backends
    from bench import env, profile
    from bench.peers import PEERS
    from suites import op_shapes

    _check_device(args.device)
    _names(args.op, list(backends.OPS), "op")
    _names(args.backend, list(backends.BACKEND_NAMES) + list(PEERS), "backend or peer")
    _names(args.dtype, DTYPES, "dtype")
    _names(args.mode, MODES, "mode")
    if args.case:
        case = parse_case(args.case)
    else:
        found = op_shapes.cases(args.suite, args.op, args.device)
        if not found:
            raise UsageError(f"suite {args.suite!r} has no case of {args.op} for {args.device}; give --case")
        case = found[0]
    env.pin_process(args.threads)
    res = profile.run(args.op, args.backend, case, args.dtype, args.device, args.mode, args.steps, args.out_dir)
    console.print(res.table, markup=False, highlight=False)
    console.print(f"trace: {res.trace}\ntable: {res.table_path}", markup=False, highlight=False)
    return 0


def _warn_busy(console, ceil: dict) -> None:
    load, cores = ceil.get("loadavg"), os.cpu_count() or 1
    if load and load[0] > cores:
        console.print(f"note: the ceilings were measured at load average {load[0]} on {cores} cores; they may be "
                      "low (arsenal roofline --refresh on a quiet machine)", markup=False, highlight=False)


def cmd_roofline(args, console) -> int:
    from rich.table import Table

    from bench import env, roofline

    _check_device(args.device)
    env.pin_process(args.threads)
    ceil = roofline.ceilings(args.device, refresh=args.refresh)
    table = Table(title=f"Ceilings of {ceil['env']['gpu'] or ceil['env']['cpu']} "
                        f"({ceil['env']['threads']['torch']} threads; measured {ceil['measured_at']})")
    table.add_column("ceiling")
    table.add_column("value", justify="right")
    table.add_row("copy bandwidth (largest set)", f"{ceil['copy_gbps']:.1f} GB/s")
    for p in ceil["copy"]:
        table.add_row(f"  copy, {p['bytes'] / 2**20:g} MiB moved ({p.get('threads') or 'GPU'} thread(s) best)",
                      f"{p['gbps']:.1f} GB/s")
    for dtype, rate in ceil["matmul_gflops"].items():
        table.add_row(f"matmul {dtype} (best of sizes and thread counts)", f"{rate:.1f} GFLOP/s")
    for m in ceil.get("matmul", ()):
        table.add_row(f"  {m['dtype']} n={m['n']}, {m['threads'] or 'GPU'} thread(s)", f"{m['gflops']:.1f} GFLOP/s")
    console.print(table)
    console.print(f"cache: {roofline.cache_path(args.device)}; load average then: {ceil.get('loadavg')}",
                  markup=False, highlight=False)
    _warn_busy(console, ceil)
    return 0


def cmd_run(args, console) -> int:
    """README's main job: the correctness check of every available backend, then the
    quick op suite with peers (forward and forward+backward) into ``--out``."""
    import backends

    from bench import env

    _check_device(args.device)
    env.pin_process(args.threads)
    check_args = argparse.Namespace(op=None, backend=None, dtype=None, peers=False, device=args.device)
    checked = []
    status = cmd_check(check_args, console, rows=checked)
    ops_args = argparse.Namespace(**vars(args), suite="quick", refresh_roofline=False, budget=None, target=None,
                                  settle_ms=None, block_ms=None, fixed_order=False)
    cases = _cases_for(argparse.Namespace(case=None, suite="quick", device=args.device))
    records = run_ops(ops_args, console, list(backends.OPS), _all_names(True), ["float32"], list(RUN_MODES), cases,
                      checked=checked)
    return max(status, _status(console, records))


def _status(console, records: list[dict]) -> int:
    """1 when one of this project's backends is incorrect or raised. A peer that fails
    the gate is recorded and reported as incorrect, never timed, and does not fail the
    command: it is a finding about the public kernel, not a defect here."""
    import backends

    bad = [r for r in records if r["status"] in ("incorrect", "error")]
    peers = sorted({r["backend"] for r in bad if r["backend"] not in backends.BACKENDS})
    if peers:
        console.print(f"peers that failed the correctness gate (recorded, not timed; not a failure of this run): "
                      f"{', '.join(peers)}")
    return 1 if any(r["backend"] in backends.BACKENDS for r in bad) else 0


COMMANDS = {"list": cmd_list, "check": cmd_check, "ops": cmd_ops, "compare": cmd_compare, "profile": cmd_profile,
            "roofline": cmd_roofline, "run": cmd_run}


def _module_of(command: str, attr: str, default):
    """An attribute of the bench/commands module that defines ``command`` (if any)."""
    from bench import commands

    for mod in commands.load():
        if mod.NAME == command:
            return getattr(mod, attr, default)
    return default


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage and the problem
        return int(exc.code or 0)
    notes: list[str] = []
    configure_environment(args, notes)
    if hasattr(args, "device") and args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    console = _console()
    for note in notes:
        console.print(note, markup=False, highlight=False)
    try:
        command = COMMANDS.get(args.command) or _module_of(args.command, "run", None)
        return command(args, console)
    except UsageError as exc:
        print(f"arsenal {args.command}: {exc}", file=sys.stderr)
        return 2
