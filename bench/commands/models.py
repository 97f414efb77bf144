"""``arsenal models``: the model families, and their benchmarks (bench/model_bench.py).

    arsenal models list                                 families, defaults, ops, parameters
    arsenal models [run] --suite quick|full|scaling     the grid of suites/model_runs.py
    arsenal models ablate [--family fastlane]           swap ablation, then the best mix
    arsenal models equivalence --mix numba_cpu          training curves: mix vs all-torch
"""

from __future__ import annotations

from bench.commands import _args

NAME = "models"
HELP = "model families (list) and model benchmarks (run, ablate, equivalence)"
TIMING = True
ACTIONS = ("run", "list", "ablate", "equivalence")


def add_arguments(sp) -> None:
    sp.add_argument("action", nargs="?", default="run", choices=ACTIONS, help="default: run")
    sp.add_argument("--suite", default="quick", help="quick, full, scaling, scaling_full, scaling_gpu")
    sp.add_argument("--family", help="comma-separated families (default: the suite's)")
    sp.add_argument("--mix", help="comma-separated mix ids: torch, numba_cpu, torch+parallel_scan=numba_cpu "
                                  "(default: the suite's)")
    sp.add_argument("--length", help="comma-separated sequence lengths (default: the suite's)")
    sp.add_argument("--no-peers", action="store_true", help="skip torch.compile of the whole model")
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


def _refused(family: str, config_id: str, T: int, skip: str | None = None) -> dict:
    from suites.model_runs import compile_refused

    reason = compile_refused(family, config_id, T) or skip
    return {"torch_compile": reason} if reason else {}


def _bench(args, log):
    from bench.model_bench import ModelBench, ModelBenchConfig
    from bench.timing import TimingConfig

    timing = ModelBenchConfig().timing
    if args.budget:
        timing = TimingConfig(**dict(timing.__dict__, budget_s=args.budget))
    return ModelBench(ModelBenchConfig(device=args.device, timing=timing, isolate=True), out=args.out, log=log)


def _mixes(args, default):
    from bench.model_mixes import parse_mix

    if not args.mix:
        return None if default is None else list(default)
    mixes = [m.strip() for m in args.mix.split(",") if m.strip()]
    for m in mixes:
        if m == "torch_compile":
            raise _args.UsageError("--mix torch_compile: it is a peer, timed unless --no-peers")
        try:
            parse_mix(m)
        except ValueError as exc:
            raise _args.UsageError(str(exc)) from None
    return mixes


def run(args, console) -> int:
    from bench import env

    if args.action == "list":
        return _list(console)
    _args.check_device(args.device)
    env.pin_process(args.threads)
    from rich.markup import escape

    log = lambda msg: console.print(f"[dim]{escape(msg)}[/]", highlight=False)  # noqa: E731  ([torch] is text)
    if args.action == "equivalence":
        return _equivalence(args, console)
    if args.action == "ablate":
        return _ablate(args, console, log)
    runs, missing = _runs(args)
    if missing:
        console.print(f"families not built yet, skipped: {', '.join(missing)}", markup=False)
    records = profile(runs, _bench(args, log), console, mixes=_mixes(args, None) if args.mix else None,
                      peers=not args.no_peers)
    console.print(f"{len(records)} records appended to {args.out}", markup=False, highlight=False)
    return 1 if any(r["status"] in ("incorrect", "error") for r in records) else 0


def profile(runs, bench, console, mixes=None, peers: bool = True) -> list[dict]:
    """Every run of a grid through ``bench`` (a ModelBench), then the console tables;
    `arsenal run` calls this with the "main" suite."""
    from bench import model_summary

    records = []
    for r in runs:
        records += bench.run(r.family, r.config_id, r.overrides, r.B, r.T, mixes or r.mixes,
                             peers=r.peers if peers else (), role=r.role, refused=_refused(r.family, r.config_id, r.T, r.skip_compile))
    model_summary.print_grid(console, records)
    if any(r["role"] == "scaling" for r in records):
        model_summary.print_scaling(console, records)
    return records


def _ablate(args, console, log) -> int:
    import models
    from bench import model_summary
    from bench.model_fits import best_mix, swap_mixes
    from bench.model_mixes import mix_id
    from suites import model_runs

    fams = _args.names(args.family, list(models.FAMILIES), "family")
    targets = [a for a in model_runs.ABLATION if not fams or a[0] in fams]
    if fams:
        known = {a[0] for a in targets}
        targets += [(f, "default", {}) for f in fams if f not in known]
    shape = dict(model_runs.ABLATION_SHAPE)
    if args.length:
        shape["T"] = int(args.length.split(",")[0])
    bench = _bench(args, log)
    status = 0
    for fam, cid, over in targets:
        if fam not in models.FAMILIES:
            console.print(f"family {fam} not built yet, skipped", markup=False)
            continue
        swaps = bench.run(fam, cid, over, shape["B"], shape["T"], swap_mixes(fam, over, args.device), peers=(),
                          role="swap")
        best = mix_id(best_mix(swaps))
        finals = bench.run(fam, cid, over, shape["B"], shape["T"], list(dict.fromkeys(["torch", best])),
                           peers=() if args.no_peers else ("torch_compile",), role="best",
                           refused=_refused(fam, cid, shape["T"]))
        model_summary.print_ablation(console, fam, cid, swaps, finals, best)
        status = max(status, int(any(r["status"] in ("incorrect", "error") for r in swaps + finals)))
    return status


def _equivalence(args, console) -> int:
    from bench import results
    from bench.model_equivalence import equivalence
    from suites import model_runs

    import models

    fams = _args.names(args.family, list(models.FAMILIES), "family") or [f for f, _, _ in model_runs.MODELS]
    mixes = _mixes(args, ["numba_cpu"])
    steps = args.steps or model_runs.EQUIVALENCE_STEPS
    bad = 0
    for fam, cid, over in model_runs.MODELS:
        if fam not in fams or fam not in models.FAMILIES:
            continue
        for m in mixes:
            rec = equivalence(fam, cid, over, m, steps, device=args.device, **model_runs.EQUIVALENCE_SHAPE)
            results.append(args.out, rec)
            floor = "" if rec["noise_floor"] is None else f", noise floor {rec['noise_floor']:.2e}"
            verdict = {"tolerance": "agree", "noise": f"agree within the noise (<= {rec['noise_factor']:g}x the floor)",
                       "differs": "DIFFER"}.get(rec["agreement"], rec["error"])
            console.print(f"{fam}-{cid} {m} vs torch, {steps} steps: max |loss diff| {rec['max_abs_diff']:.2e} "
                          f"(tolerance {rec['tolerance']:.0e}{floor}), final loss {rec['losses_mix'][-1]:.4f} vs "
                          f"{rec['losses_torch'][-1]:.4f}: {verdict}", markup=False, highlight=False)
            bad += not rec["ok"]
    return 1 if bad else 0
