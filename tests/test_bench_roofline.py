"""bench.roofline: the derived figures, the bandwidth curve lookup and the cache (with a
fake measurement: nothing is timed here)."""

import json

import pytest

from bench import env, roofline

CEIL = {"fingerprint": "f", "copy": [{"bytes": 1 << 20, "gbps": 100.0}, {"bytes": 1 << 24, "gbps": 50.0},
                                     {"bytes": 1 << 30, "gbps": 20.0}],
        "copy_gbps": 20.0, "matmul_gflops": {"float32": 200.0, "bfloat16": 400.0}}


def test_bandwidth_ceiling_follows_the_working_set():
    assert roofline.bandwidth_at(CEIL, 1000) == 100.0  # below the curve: its first point
    assert roofline.bandwidth_at(CEIL, 1 << 24) == 50.0
    assert roofline.bandwidth_at(CEIL, (1 << 24) + 1) == 50.0  # the point at or below
    assert roofline.bandwidth_at(CEIL, 1 << 40) == 20.0


def test_flops_ceiling_per_dtype():
    assert roofline.flops_ceiling(CEIL, "float32") == 200.0
    assert roofline.flops_ceiling(CEIL, "float64") == 200.0
    assert roofline.flops_ceiling(CEIL, "bfloat16") == 400.0


def test_derive_gives_rates_and_percentages():
    # 2 GB in 0.2 s = 10 GB/s of a 20 GB/s ceiling; 1 GFLOP in 0.2 s = 5 GFLOP/s of 200
    d = roofline.derive(CEIL, flops=1e9, nbytes=2e9, seconds=0.2, dtype="float32")
    assert d["gbps"] == pytest.approx(10.0) and d["gflops"] == pytest.approx(5.0)
    assert d["pct_bandwidth"] == pytest.approx(50.0) and d["pct_flops"] == pytest.approx(2.5)
    assert d["pct_roofline"] == pytest.approx(50.0) and d["roofline"]["bound"] == "memory"
    d = roofline.derive(CEIL, flops=1e12, nbytes=1e6, seconds=1.0, dtype="float32")
    assert d["roofline"]["bound"] == "compute" and d["pct_roofline"] == pytest.approx(500.0)


def test_ceilings_are_measured_once_per_fingerprint_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSENAL_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_measure(device="cpu"):
        calls.append(device)
        return dict(CEIL, fingerprint=env.machine_fingerprint(device))

    monkeypatch.setattr(roofline, "measure", fake_measure)
    first = roofline.ceilings("cpu")
    second = roofline.ceilings("cpu")
    assert first == second and calls == ["cpu"]
    path = roofline.cache_path("cpu")
    assert path.parent == tmp_path and json.loads(path.read_text())["copy_gbps"] == 20.0
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temporary file
    roofline.ceilings("cpu", refresh=True)
    assert calls == ["cpu", "cpu"]


def test_refresh_keeps_the_better_figure_of_old_and_new(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSENAL_CACHE_DIR", str(tmp_path))
    fp = env.machine_fingerprint("cpu")
    busy = {"fingerprint": fp, "copy": [{"bytes": 1 << 20, "gbps": 40.0}, {"bytes": 1 << 30, "gbps": 25.0}],
            "copy_gbps": 25.0, "matmul_gflops": {"float32": 100.0, "bfloat16": 500.0}, "measured_at": "t1"}
    monkeypatch.setattr(roofline, "measure", lambda device="cpu": dict(CEIL, fingerprint=fp, measured_at="t0"))
    roofline.ceilings("cpu")
    monkeypatch.setattr(roofline, "measure", lambda device="cpu": busy)
    merged = roofline.ceilings("cpu", refresh=True)
    assert [p["gbps"] for p in merged["copy"]] == [100.0, 25.0]  # 1 MiB: the old 100; 1 GiB: the new 25
    assert merged["copy_gbps"] == 25.0 and merged["matmul_gflops"] == {"float32": 200.0, "bfloat16": 500.0}
    assert merged["history"][0]["measured_at"] == "t0" and roofline.ceilings("cpu") == merged


def test_a_damaged_cache_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSENAL_CACHE_DIR", str(tmp_path))
    roofline.cache_path("cpu").write_text("{not json")
    monkeypatch.setattr(roofline, "measure", lambda device="cpu": dict(CEIL, fingerprint="x"))
    assert roofline.ceilings("cpu")["copy_gbps"] == 20.0
