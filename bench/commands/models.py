"""``arsenal models``: the model families, and their benchmarks (bench/modelbench/bench.py).

    arsenal models list                                 families, defaults, ops, parameters
    arsenal models [run] --suite quick|full|scaling     the grid of suites/model_runs.py
    arsenal models ablate [--family fastlane]           swap ablation, then the best mix
    arsenal models equivalence --mix numba_cpu          training curves: mix vs all-torch
    arsenal models --family stackformer --length 256 --peers torch_compile,torch_compile_model
"""

from __future__ import annotations

from bench.commands import _args

NAME = "models"
HELP = "model families (list) and model benchmarks (run, ablate, equivalence)"
TIMING = True
ACTIONS = ("run", "list", "ablate", "equivalence")


def add_arguments(sp) -> None:
    sp.add_argument("action", nargs="?", default="run", choices=ACTIONS, help="default: run")
    from suites.model_runs import SUITES

    sp.add_argument("--suite", default="quick", help=", ".join(SUITES) + " (suites/model_runs.py)")
    sp.add_argument("--family", help="comma-separated families (default: the suite's)")
    sp.add_argument("--mix", help="comma-separated mix ids: torch, numba_cpu, torch+parallel_scan=numba_cpu "
                                  "(default: the suite's)")
    sp.add_argument("--length", help="comma-separated sequence lengths (default: the suite's)")
    sp.add_argument("--no-peers", action="store_true", help="skip the compiled peers (torch.compile)")
    sp.add_argument("--peers", help="comma-separated compiled peers (default: the suite's, torch_compile): "
                                    "torch_compile (a loop-bound family's step), torch_compile_model (the "
                                    "whole model, its loop unrolled where dynamo can trace it)")
    sp.add_argument("--budget", type=float, help="seconds of timing per group")
    sp.add_argument("--steps", type=int, help="equivalence: training steps (default 300)")
    sp.add_argument("--device", help=_args.DEVICE_HELP)
    sp.add_argument("--threads", type=int)
    sp.add_argument("--out", default="out/results.jsonl", help="results file (appended)")


def _list(console) -> int:
    from rich.table import Table

    import models

    table = Table(title="Model families (default configs)")
    for col in ("family", "ops used", "parameters", "defaults", "what it is"):
        table.add_column(col)
    for fam in models.FAMILIES:
        d = models.describe(fam)
        defaults = ", ".join(f"{k}={v}" for k, v in d["defaults"].items() if k != "family")
        table.add_row(fam, ", ".join(d["ops"]) or "(none: torch only)", f"{d['params']:,}", defaults, d["doc"])
    console.print(table)
    return 0


def _runs(args):
    from suites import model_runs

    import models

    if args.suite not in model_runs.SUITES:
        raise _args.UsageError(f"unknown --suite {args.suite!r}; valid: {', '.join(model_runs.SUITES)}")
    runs = model_runs.SUITES[args.suite]
    fams = _args.names(args.family, list(models.FAMILIES), "family")
    if fams:
        runs = [r for r in runs if r.family in fams]
    lengths = [int(x) for x in args.length.split(",")] if args.length else None
    if lengths:
        seen, picked = set(), []
        for r in runs:
            for T in lengths:
                key = (r.family, r.config_id, T)
                if key not in seen:
                    seen.add(key)
                    picked.append(type(r)(r.family, r.config_id, r.overrides, B=r.B, T=T, mixes=r.mixes,
                                          peers=r.peers, role=r.role))
        runs = picked
    missing = sorted({r.family for r in runs} - set(models.FAMILIES))
    return [r for r in runs if r.family in models.FAMILIES], missing


def _bench(args, log, groups=None):
    from bench.modelbench.bench import ModelBench, ModelBenchConfig
    from bench.timing import TimingConfig

    timing = ModelBenchConfig().timing
    if args.budget:
        timing = TimingConfig(**dict(timing.__dict__, budget_s=args.budget))
    return ModelBench(ModelBenchConfig(device=args.device, timing=timing, isolate=True), out=args.out, log=log,
                      groups=groups)


def _mixes(args, default, console):
    """--mix as canonical mix ids: a comma-separated list of ids, or one mix in the alias
    form default=torch,parallel_scan=numba_cpu (its canonical id is printed)."""
    from backends.mix import alias_note, mix_id
    from bench.modelbench.peers import MODEL_PEERS

    if not args.mix:
        return None if default is None else list(default)
    text = args.mix.strip()
    given = [text] if text.startswith("default=") else [m.strip() for m in text.split(",") if m.strip()]
    mixes = []
    for m in given:
        if m in MODEL_PEERS:
            raise _args.UsageError(f"--mix {m}: it is a peer (--peers names the peers; --no-peers skips them)")
        try:
            mixes.append(mix_id(m))
            note = alias_note(m)
        except ValueError as exc:
            raise _args.UsageError(f"--mix: {exc}") from None
        if note:
            console.print(note, markup=False, highlight=False)
    return mixes


def _peers(args):
    """--peers / --no-peers as the peers to time: None (each grid row's own), or a tuple."""
    from bench.modelbench.peers import MODEL_PEERS

    if args.peers is not None and args.no_peers:
        raise _args.UsageError("--peers and --no-peers: give one of them")
    if args.no_peers:
        return ()
    return None if args.peers is None else tuple(_args.names(args.peers, list(MODEL_PEERS), "peer"))


def run(args, console) -> int:
    from bench import env

    if args.action == "list":
        return _list(console)
    _args.check_device(args.device)
    env.pin_process(args.threads)
    from rich.markup import escape

    log = lambda msg: console.print(f"[dim]{escape(msg)}[/]", highlight=False)  # noqa: E731  ([torch] is text)
    import models
    from bench.modelbench import grid

    families = _args.names(args.family, list(models.FAMILIES), "family")
    peers = _peers(args)
    if args.action == "equivalence":
        return grid.equivalences(families, _mixes(args, ["numba_cpu"], console), args.steps, args.device, args.out, console)
    if args.action == "ablate":
        length = int(args.length.split(",")[0]) if args.length else None
        return grid.ablate(families, _bench(args, log), console, args.device, length, peers=peers)
    runs, missing = _runs(args)
    if missing:
        console.print(f"families not built yet, skipped: {', '.join(missing)}", markup=False)
    records = grid.profile(runs, _bench(args, log, groups=len(runs)), console, mixes=_mixes(args, None, console),
                           peers=peers)
    console.print(f"{len(records)} records appended to {args.out}", markup=False, highlight=False)
    return 1 if any(r["status"] in ("incorrect", "error") for r in records) else 0


