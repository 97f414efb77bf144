"""bench.ops.gate, bench.ops.plan and bench.ops.runner: the gate's plan, grouping, and a candidate
that raises during timing (tiny cases, fake ceilings; no figure is asserted)."""

import torch

import backends
from bench.ops import gate as gates
from bench.ops import candidates, pipeline, plan, runner
from bench.timing import TimingConfig

CEIL = {"fingerprint": "t", "copy": [{"bytes": 1, "gbps": 1e9}], "copy_gbps": 1e9,
        "matmul_gflops": {"float32": 1e9, "bfloat16": 1e9}}
QUICK = TimingConfig(warmup_s=0.0, min_reps=3, max_reps=5, budget_s=0.05, settle_s=0.0)
SMALL, HUGE = dict(B=2, T=8, D=4), dict(B=64, T=65536, D=1024)


def test_gate_plan_for_backends_and_peers():
    gate, ref, oracle = gates.Gate(), gates.REFERENCE, gates.ORACLE
    tests = list(backends.OPS["parallel_scan"].test_cases)
    assert gate.checks("parallel_scan", "torch", SMALL, grad=True) == (
        [(c, True, ref) for c in tests] + [(SMALL, False, ref), (SMALL, True, oracle)])
    assert gate.checks("parallel_scan", "torch", HUGE, grad=False) == [(c, False, ref) for c in tests]
    largest = max(tests, key=lambda c: c["B"] * c["T"] * c["D"])
    assert gate.checks("parallel_scan", "torch_compile", SMALL, grad=True) == [
        (largest, True, ref), (SMALL, False, ref), (SMALL, True, oracle)]
    assert gate.checks("parallel_scan", "torch_compile", SMALL, grad=False) == [(SMALL, False, ref)]
    assert gate.checks("parallel_scan", "torch_compile", HUGE, grad=False) == [(largest, False, ref)]
    strict = gates.Gate(case_grad=True)
    assert strict.checks("parallel_scan", "torch_compile", SMALL, grad=True)[-1] == (SMALL, True, ref)
    assert strict.checks("parallel_scan", "torch", SMALL, grad=False)[-1] == (SMALL, False, ref)


def test_the_gate_checks_gradients_at_the_benchmark_size_against_the_oracle(monkeypatch):
    """A peer whose gradient goes wrong only past the test cases' lengths passes them, and
    is caught at the benchmark size by the oracle (the torch backend in float64)."""
    real = backends.get("parallel_scan", "torch")
    longest = max(c["T"] for c in backends.OPS["parallel_scan"].test_cases)

    def candidate(a, b, h0=None):
        h = real(a, b, h0)
        if a.shape[1] > longest:  # the same forward; db gets an extra 0.5 * dh
            h = h + 0.5 * (b - b.detach())
        return h

    monkeypatch.setattr(gates.candidates, "implementation", lambda op, name: candidate)
    gate = gates.Gate()
    case = dict(B=2, T=longest + 1, D=8)
    got = gate("parallel_scan", "torch_compile", case, torch.float32, grad=True)
    assert not got.ok and [c["against"] for c in got.cases] == [gates.REFERENCE] * 2 + [gates.ORACLE]
    assert all("vs torch" in p for p in got.problems) and any("db" in p for p in got.problems), got.problems
    assert gate("parallel_scan", "torch_compile", case, torch.float32, grad=False).ok  # the forward is right


def test_plan_keeps_the_given_order_and_drops_names_without_the_op():
    groups = plan.groups(plan.Selection(ops=("parallel_scan", "micro_mlp"), names=("mingru", "torch"), case=SMALL,
                                        modes=("forward", "backward")))
    assert [(g.op, g.mode) for g in groups] == [("parallel_scan", "forward"), ("parallel_scan", "backward"),
                                                ("micro_mlp", "forward"), ("micro_mlp", "backward")]
    assert groups[0].names == ("mingru", "torch")  # the order given is the interleaving order
    assert groups[2].names == ("torch",)  # mingru has no micro_mlp adapter


def test_a_candidate_raising_while_timed_is_an_error_and_the_others_are_still_timed(monkeypatch, tmp_path):
    real_prepare = pipeline.prep.prepare

    def prepare(op, name, case, dtype, device, mode, seed=0):
        p = real_prepare(op, "torch", case, dtype, device, mode, seed=seed)
        if name == "torch_compile":
            calls = []

            def flaky():
                calls.append(1)
                if len(calls) > 1:
                    raise RuntimeError("kernel fell over")
            p.fn = flaky
        return p

    monkeypatch.setattr(pipeline.prep, "prepare", prepare)
    monkeypatch.setattr(gates.Gate, "checks", lambda self, op, name, case, grad: [])
    out = tmp_path / "r.jsonl"
    run = runner.Runner(runner.RunConfig(timing=QUICK), out=out, ceilings=CEIL)
    (group,) = plan.groups(plan.Selection(ops=("parallel_scan",), names=("torch", "torch_compile"), case=SMALL))
    recs = run.run_group(group)
    by = {r["backend"]: r for r in recs}
    assert by["torch"]["status"] == "ok" and by["torch"]["reps"] > 0
    assert by["torch_compile"]["status"] == "error" and "kernel fell over" in by["torch_compile"]["error"]
    assert by["torch"]["speedup_vs_torch_compile"] is None


def test_gate_reuses_checks_already_run(monkeypatch):
    from backends.check import CheckResult

    calls = []
    monkeypatch.setattr(gates, "check_pair", lambda op, name, case, *a, **k: calls.append(case) or CheckResult(
        op, name, dict(case), "float32", "cpu", ok=True, forward_error=0.0))
    gate = gates.Gate()
    first = backends.OPS["parallel_scan"].test_cases[0]
    gate.add(CheckResult("parallel_scan", "torch", dict(first), "float32", "cpu", ok=False, forward_error=2.0,
                         problems=["h: error 2x the tolerance"]), grad=True)
    res = gate("parallel_scan", "torch", SMALL, torch.float32, grad=True)
    assert not res.ok and any("2x the tolerance" in p for p in res.problems)
    assert first not in calls and SMALL in calls  # the seeded case is not checked again


def test_unavailable_pairs_are_planned_with_their_reason_and_peers_only_when_asked():
    sel = plan.Selection(ops=("parallel_scan",), case=SMALL, modes=("forward",))
    (group,) = plan.groups(sel)
    assert all(candidates.is_backend(n) for n in group.names)  # no --peers: backends only
    by_name = {i.name: i for i in group.items}
    assert by_name["torch"].reason is None
    assert all(i.reason is None or i.reason.strip() for i in group.items)  # every pair is planned, run or not
    (group,) = plan.groups(plan.Selection(ops=("parallel_scan",), case=SMALL, peers=True))
    assert "torch_compile" in group.names and "accelerated_scan" in group.names
    if candidates.get("accelerated_scan").reason() is not None:
        assert "accelerated" in {i.name: i for i in group.items}["accelerated_scan"].reason
    fp64 = plan.items(plan.Selection(ops=("parallel_scan",), names=("mingru",), case=SMALL, dtypes=(torch.float64,)))
    assert len(fp64) == 1 and "takes float32" in fp64[0].reason  # a dtype the peer lacks


def test_check_items_cover_each_dtype_and_carry_reasons():
    got = plan.checks(plan.Selection(ops=("parallel_scan",), names=("torch", "triton")))
    torch_dtypes = [c.dtype for c in got if c.name == "torch"]
    assert torch.float32 in torch_dtypes and all(c.reason is None and c.grad for c in got if c.name == "torch")
    only = plan.checks(plan.Selection(ops=("parallel_scan",), names=("torch",), dtypes=(torch.float64,)))
    assert [c.dtype for c in only] == [torch.float64]


def test_the_candidate_table_tells_backends_from_peers():
    table = candidates.table()
    assert list(table)[:len(backends.BACKEND_NAMES)] == list(backends.BACKEND_NAMES)
    assert table["torch"].kind == candidates.BACKEND and table["torch_compile"].kind == candidates.PEER
    assert candidates.checked_callable("parallel_scan", "torch") is None  # check_pair uses the registry
    assert callable(candidates.checked_callable("parallel_scan", "torch_compile"))
