"""A model grid run end to end, with its console tables: the profile of a suite's runs,
the swap ablation and best mix, and training equivalence. The commands (``arsenal
models``, ``arsenal run``) parse options and call one of these."""

from __future__ import annotations


def refused(skip: str | None) -> dict:
    """The peers a run does not time, with why (a grid row's ``skip_compile``)."""
    from bench.modelbench.peers import MODEL_PEERS

    return {p: skip for p in MODEL_PEERS} if skip else {}


def profile(runs, bench, console, mixes=None, peers=None) -> list[dict]:
    """Every run of a grid through ``bench`` (a ModelBench), then the console tables;
    ``arsenal models`` and ``arsenal run`` (the "main" suite) call this. ``peers``: None,
    each run's own (the grid's); else these (``()``: none)."""
    from bench import results
    from bench.modelbench import summary as model_summary
    from bench.modelbench.fits import scaling_fits

    records = []
    for r in runs:
        records += bench.run(r.family, r.config_id, r.overrides, r.B, r.T, mixes or r.mixes,
                             peers=r.peers if peers is None else peers, role=r.role, refused=refused(r.skip_compile))
    model_summary.print_grid(console, records)
    if any(r["role"] == "scaling" for r in records):
        fits = scaling_fits(records)
        model_summary.print_scaling(console, fits)
        if bench.out is not None:  # the slopes and break-even lengths as records (the report reads them)
            for f in fits:
                results.append(bench.out, results.new_record("scaling_fit", run_id=bench.run_id, env=bench.env,
                                                             device=bench.cfg.device, status="ok", **f))
    return records


def ablate(families, bench, console, device: str, length: int | None = None, peers=None) -> int:
    """The swap ablation of each family (every op moved alone off torch), then its best mix
    measured end to end against all-torch and torch.compile; returns the exit status."""
    import models
    from bench.modelbench import summary as model_summary
    from bench.modelbench.fits import best_mix, swap_mixes
    from bench.modelbench.peers import GRID_PEERS
    from backends.mix import mix_id
    from suites import model_runs

    fams = families
    targets = [a for a in model_runs.ABLATION if not fams or a[0] in fams]
    if fams:
        known = {a[0] for a in targets}
        targets += [(f, "default", {}) for f in fams if f not in known]
    shape = dict(model_runs.ABLATION_SHAPE)
    if length:
        shape["T"] = length
    status = 0
    for fam, cid, over in targets:
        if fam not in models.FAMILIES:
            console.print(f"family {fam} not built yet, skipped", markup=False)
            continue
        swaps = bench.run(fam, cid, over, shape["B"], shape["T"], swap_mixes(fam, over, device), peers=(),
                          role="swap")
        best = mix_id(best_mix(swaps))
        finals = bench.run(fam, cid, over, shape["B"], shape["T"], list(dict.fromkeys(["torch", best])),
                           peers=GRID_PEERS if peers is None else peers, role="best")
        model_summary.print_ablation(console, fam, cid, swaps, finals, best)
        status = max(status, int(any(r["status"] in ("incorrect", "error") for r in swaps + finals)))
    return status


def equivalences(families, mixes, steps: int | None, device: str, out: str, console) -> int:
    """Each family of the grid trained under each mix and under all-torch from the same
    seed; a record per pair appended to ``out``; returns 1 when a pair differs."""
    from bench import results
    from bench.modelbench.equivalence import equivalence
    from suites import model_runs

    import models

    from bench import env

    fams = families or [f for f, _, _ in model_runs.MODELS]
    steps = steps or model_runs.EQUIVALENCE_STEPS
    run_id, fingerprint = results.new_run_id(), env.environment(device)
    bad = 0
    for fam, cid, over in model_runs.MODELS:
        if fam not in fams or fam not in models.FAMILIES:
            continue
        for m in mixes:
            rec = equivalence(fam, cid, over, m, steps, device=device, run_id=run_id, env=fingerprint,
                              **model_runs.EQUIVALENCE_SHAPE)
            results.append(out, rec)
            floor = "" if rec["noise_floor"] is None else f", noise floor {rec['noise_floor']:.2e}"
            verdict = {"tolerance": "agree", "noise": f"agree within the noise (<= {rec['noise_factor']:g}x the floor)",
                       "differs": "DIFFER"}.get(rec["agreement"], rec["error"])
            console.print(f"{fam}-{cid} {m} vs torch, {steps} steps: max |loss diff| {rec['max_abs_diff']:.2e} "
                          f"(tolerance {rec['tolerance']:.0e}{floor}), final loss {rec['losses_mix'][-1]:.4f} vs "
                          f"{rec['losses_torch'][-1]:.4f}: {verdict}", markup=False, highlight=False)
            bad += not rec["ok"]
    return 1 if bad else 0
