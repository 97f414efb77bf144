"""bench.ops.drift at tiny T: records written and readable, float32 close to the float64
truth, bfloat16 further from it than float32."""

import math

import pytest

from bench.ops import drift

from bench import results


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("drift") / "results.jsonl"
    # T=40: the torch-float64 truth
    cfg = drift.DriftConfig(Ts=(8, 40), reference_max_T={"banked_attention": 8, "elman_scan": 8})
    written = drift.run(cfg, names=["torch", "numba_cpu"], out=path)
    return written, results.read(path)


def test_records_are_written_and_parse(records):
    written, read = records
    assert written and len(read) == len(written)
    for rec in read:
        assert rec["kind"] == "drift" and rec["schema"] == results.SCHEMA_VERSION
        for key in ("op", "backend", "dtype", "variant", "T", "error", "oracle", "case", "env"):
            assert key in rec, key
    got = {(r["op"], r["variant"]) for r in read}
    assert got == {(op, variant) for op, variant, _ in drift.VARIANTS}
    for op in ("banked_attention", "elman_scan"):
        assert {r["oracle"] for r in read if r["op"] == op} == {"reference", "torch-float64"}, op
    assert {r["variant"] for r in read if r["op"] == "elman_scan"} == {"plain", "gated", "log"}
    assert {r["backend"] for r in read if r["op"] == "elman_scan"} == {"torch", "numba_cpu"}
    assert all(set(r["errors"]) == {"h"} for r in read if r["op"] == "elman_scan")  # the log pair as one state
    assert {r["variant"] for r in read if r["op"] == "gated_update"} == {"bounded", "free"}
    assert all(r["case"]["bound"] == (1.0 if r["variant"] == "bounded" else None)
               for r in read if r["op"] == "gated_update")


def test_float32_is_close_and_bfloat16_is_further(records):
    _, read = records
    f32 = {(r["op"], r["variant"], r["backend"], r["T"]): r["error"] for r in read if r["dtype"] == "float32"}
    bf16 = {(r["op"], r["variant"], r["backend"], r["T"]): r["error"] for r in read if r["dtype"] == "bfloat16"}
    assert f32 and bf16
    assert {k[2] for k in f32} >= {"torch"}
    for key, err in f32.items():
        assert 0.0 <= err < 1e-5, (key, err)
    for key, err in bf16.items():
        assert err > f32[key], (key, err, f32[key])


def test_log_space_pair_is_compared_as_the_state():
    """(log|h|, sign h) -> h = sign exp(log|h|): a sign flip at |h| = 1e-9 weighs 2e-9, not 2."""
    import torch

    ref = [torch.tensor([[0.0, -20.723]], dtype=torch.float64), torch.tensor([[1.0, 1.0]], dtype=torch.float64)]
    got = [ref[0].float(), torch.tensor([[1.0, -1.0]])]
    want, have = (drift.compared("elman_scan", {"log_space": True}, x)["h"] for x in (ref, got))
    assert drift.relative_error(have, want) == pytest.approx(2e-9, rel=1e-3)
    assert drift.compared("elman_scan", {"log_space": False}, ref[:1]).keys() == {"h"}


def test_relative_error():
    import torch

    ref = torch.tensor([1.0, -4.0, 2.0], dtype=torch.float64)
    assert drift.relative_error(ref.float(), ref) == 0.0
    assert drift.relative_error(ref + torch.tensor([0.0, 0.4, 0.0], dtype=torch.float64), ref) == pytest.approx(0.1)
    assert drift.relative_error(torch.tensor([math.nan, 0.0, 0.0]), ref) == math.inf
    assert drift.relative_error(torch.zeros(3), torch.zeros(3, dtype=torch.float64)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        drift.relative_error(torch.zeros(2), ref)


def test_unknown_op_is_refused():
    with pytest.raises(ValueError, match="drift covers parallel_scan, gated_update, banked_attention, elman_scan"):
        drift.run(drift.DriftConfig(Ts=(4,)), ops=["stack_step"])
