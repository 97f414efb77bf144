"""The cheap checked path: the generated argument checks accept exactly what the full
checks accept, and bench.ops.overhead measures and records raw against checked (with a
fake clock: tests never time anything)."""

import itertools

import pytest
import torch

import backends
from backends.check import flatten
from backends.registry import TensorArg
from bench.ops import overhead
from bench import results
from bench.timing import TimingConfig

FAST = overhead.OverheadConfig(timing=TimingConfig(warmup_s=0.0, min_reps=3, min_rounds=2, max_reps=20,
                                                   target_rel_iqr=1.0, budget_s=0.0, settle_s=0.0))


class FakeClock:
    """Samples by closure name: raw 100 us, checked 104 us, the checks alone 3 us."""

    def block(self, fn, sync, reps):
        return [{"raw": 100_000, "checked": 104_000, "checks": 3_000}[fn.__name__]] * reps, None


def _mutations(op):
    """(label, kwargs) of valid and invalid calls of ``op``: every tensor argument
    removed, replaced by a list, re-typed, moved, re-ranked and resized."""
    spec = backends.OPS[op]
    for case in spec.test_cases[:3]:
        base = spec.make_inputs(case, torch.float32, "cpu", seed=1)
        yield "valid", base
        yield "float64", spec.make_inputs(case, torch.float64, "cpu", seed=1)
        named = [(n, i) for n, a in spec.args.items() for i in ([None] if isinstance(a, TensorArg) else range(len(a)))]
        for (name, sub), change in itertools.product(named, ("none", "list", "int", "double", "bool", "meta",
                                                            "rank", "grow", "shrink")):
            value = base[name] if sub is None else (base[name][sub] if base[name] is not None else None)
            if value is None:
                continue
            new = {"none": lambda t: None, "list": lambda t: t.tolist(), "int": lambda t: t.to(torch.int32),
                   "double": lambda t: t.double(), "bool": lambda t: t > 0, "meta": lambda t: t.to("meta"),
                   "rank": lambda t: t[None], "grow": lambda t: torch.cat([t, t[..., :1]], -1),
                   "shrink": lambda t: t[..., :-1]}[change](value)
            kwargs = dict(base)
            if sub is None:
                kwargs[name] = new
            else:
                items = list(base[name])
                items[sub] = new
                kwargs[name] = tuple(items)
            yield f"{name}[{sub}]-{change}", kwargs
        for name, spec_arg in spec.args.items():
            if not isinstance(spec_arg, TensorArg):
                yield f"{name}-not-a-tuple", dict(base, **{name: base[name][0] if base[name] else 3.0})
                yield f"{name}-short", dict(base, **{name: (base[name] or (None, None))[:1]})


@pytest.mark.parametrize("op", list(backends.OPS))
def test_generated_checks_agree_with_the_full_checks(op):
    plan = backends.OPS[op].plan
    seen = set()
    for label, kwargs in _mutations(op):
        values = plan.bind((), kwargs)
        fast = plan._accept(values)
        try:
            slow = plan.check_slowly("torch", values)
        except (TypeError, ValueError) as exc:
            assert fast is None, f"{op} {label}: the generated checks accept what the full checks refuse: {exc}"
            seen.add("refused")
            continue
        assert fast is not None, f"{op} {label}: the generated checks refuse a call the full checks accept"
        assert fast[0] == slow[0] and fast[1] is slow[1] and fast[2] == slow[2], (op, label, fast, slow)
        seen.add("accepted")
    assert seen == {"accepted", "refused"}


def test_binding_matches_python(request):
    plan = backends.OPS["gated_update"].plan
    a, b = torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)
    assert plan.bind((a, b), {}) == [a, b, None, None]
    assert plan.bind((a,), {"b": b, "bound": 2.0}) == [a, b, None, 2.0]
    for args, kwargs, match in [((a, b, None, None, 1), {}, "too many positional arguments"),
                                ((a,), {"a": a, "b": b}, "multiple values for argument 'a'"),
                                ((a, b), {"bond": 1.0}, "unexpected keyword argument 'bond'"),
                                ((a,), {}, "missing a required argument: 'b'")]:
        with pytest.raises(TypeError, match=match):
            plan.bind(args, kwargs)


@pytest.mark.parametrize("op", list(overhead.TINY_CASES))
def test_raw_and_checked_closures_compute_the_same(op):
    raw, checked, checks = overhead.closures(op, "torch")
    for r, c in zip(*(flatten(f()) for f in (raw, checked))):
        assert torch.equal(r, c)
    assert checks() is None


def test_measure_and_records(tmp_path):
    path = tmp_path / "results.jsonl"
    rec = overhead.measure("stack_step", "torch", FAST, clock=FakeClock())
    assert rec["status"] == "ok" and rec["kind"] == "overhead"
    assert rec["raw_ns"] == 100_000 and rec["checked_ns"] == 104_000 and rec["overhead_ns"] == 4_000
    assert rec["overhead_ci95_ns"] == pytest.approx([4_000, 4_000]) and rec["checks_ns"] == 3_000
    written = overhead.run(FAST, ops=["parallel_scan"], names=["torch"], out=path, clock=FakeClock())
    read = results.read(path)
    assert len(read) == len(written) == 1
    assert read[0]["op"] == "parallel_scan" and read[0]["backend"] == "torch" and read[0]["case_id"]
    assert set(read[0]["raw_samples_ns"]) == {100_000} and read[0]["overhead_ns"] == 4_000


def test_interpreted_and_unknown_backends_are_not_timed(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if backends.BACKENDS["triton"].why_unavailable() is None:
        assert "interpreter" in overhead.why_not_timed("parallel_scan", "triton")
    assert "not a registry backend" in overhead.why_not_timed("parallel_scan", "torch_compile")
    assert overhead.measure("parallel_scan", "torch_compile", FAST)["status"] == "unavailable"
    assert all(b not in ("triton", "numba_cuda") for _, b in overhead.pairs())


def test_generated_checks_on_shapes_the_contracts_do_not_have_yet():
    """A square matrix (a symbol twice in one argument), a scalar, batch axes, a symbol
    first met in an optional argument: fast and full checks agree on every call."""
    import inspect

    from backends.registry import ArgPlan

    def op(m, s, x, extra=None, y=None):
        pass

    plan = ArgPlan("synthetic", inspect.signature(op), {
        "m": TensorArg("D D"), "s": TensorArg(""), "x": TensorArg("... D"),
        "extra": TensorArg("E", optional=True), "y": TensorArg("E D", optional=True)})
    z = torch.zeros
    calls = {
        "ok": (z(3, 3), z(()), z(2, 5, 3), None, None),
        "ok-extra": (z(3, 3), z(()), z(3), z(4), z(4, 3)),
        "ok-y-only": (z(3, 3), z(()), z(3), None, z(7, 3)),
        "not-square": (z(3, 4), z(()), z(3), None, None),
        "scalar-rank": (z(3, 3), z(1), z(3), None, None),
        "batch-mismatch": (z(3, 3), z(()), z(2, 4), None, None),
        "extra-vs-y": (z(3, 3), z(()), z(3), z(4), z(5, 3)),
        "y-D": (z(3, 3), z(()), z(3), None, z(7, 2)),
    }
    for label, values in calls.items():
        fast = plan._accept(list(values))
        try:
            slow = plan.check_slowly("b", list(values))
        except ValueError:
            assert fast is None and not label.startswith("ok"), label
            continue
        assert label.startswith("ok") and fast is not None and fast[0] == slow[0], (label, fast, slow)
