"""bench.compare: verdicts from raw samples (Mann-Whitney U) and the matching of records."""

import numpy as np
import pytest

from bench import compare

RNG = np.random.default_rng(7)


def samples(center, n=40, spread=0.02):
    return list(center * (1.0 + spread * RNG.standard_normal(n)))


def test_clearly_slower_and_faster():
    old = samples(100.0)
    v, ratio, p = compare.verdict(old, samples(150.0))
    assert v == "slower" and ratio == pytest.approx(1.5, rel=0.05) and p < 1e-6
    v, ratio, p = compare.verdict(old, samples(60.0))
    assert v == "faster" and ratio < 1


def test_identical_distributions_are_not_a_change():
    both = samples(100.0, n=80)
    v, ratio, p = compare.verdict(both[::2], both[1::2])
    assert v in ("unchanged", "ambiguous")
    v, _, _ = compare.verdict(both, list(both))
    assert v == "unchanged"


def test_a_large_ratio_that_noise_cannot_separate_is_ambiguous():
    old = [100, 300, 100, 300, 100, 300]
    new = [300, 100, 300, 300, 100, 300]
    v, ratio, p = compare.verdict(old, new)
    assert ratio > 1.05 and p >= 0.01 and v == "ambiguous"


def test_too_few_samples_are_ambiguous():
    v, _, p = compare.verdict([100, 100], [200, 200])
    assert v == "ambiguous" and p is None


def rec(backend, center, status="ok", case_id="B1-T8-D4"):
    return {"op": "parallel_scan", "backend": backend, "variant": None, "case_id": case_id, "dtype": "float32",
            "mode": "forward", "device": "cpu", "status": status,
            "samples_ns": samples(center) if status == "ok" else None, "median_ns": center}


def test_compare_matches_records_and_reports_every_kind_of_change():
    old = [rec("torch", 100.0), rec("numba_cpu", 100.0), rec("gone", 100.0), rec("flaky", 100.0)]
    new = [rec("torch", 100.0), rec("numba_cpu", 200.0), rec("flaky", 100.0, status="incorrect"),
           rec("new", 100.0)]
    by_backend = {c.label["backend"]: c for c in compare.compare(old, new)}
    assert by_backend["torch"].verdict == "unchanged"
    assert by_backend["numba_cpu"].verdict == "slower" and by_backend["numba_cpu"].ratio > 1.5
    assert by_backend["flaky"].verdict == "status" and by_backend["flaky"].note == "ok -> incorrect"
    assert by_backend["new"].verdict == "added" and by_backend["gone"].verdict == "removed"


def test_compare_command_names_refused_samples_and_does_not_crash(tmp_path, capsys):
    """A results file whose samples hold text is validated on reading: the pair is reported
    without valid samples, the refused value is named, no traceback (issue 22)."""
    import json

    from bench import cli

    good = {"schema": 1, "op": "parallel_scan", "backend": "torch", "variant": None, "case_id": "B1-T8-D4",
            "dtype": "float32", "mode": "forward", "device": "cpu", "status": "ok", "run_id": "r",
            "time": "2026-01-01T00:00:00Z", "samples_ns": [100, 101, 102, 103, 104, 105], "median_ns": 102}
    (tmp_path / "old.jsonl").write_text(json.dumps(good) + "\n")
    (tmp_path / "new.jsonl").write_text(json.dumps(dict(good, samples_ns=["a", None, 3])) + "\n")
    assert cli.main(["compare", str(tmp_path / "old.jsonl"), str(tmp_path / "new.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "new.jsonl:1: samples_ns: [0]: text 'a' where a number belongs" in out
    assert "no valid samples on one side" in out
