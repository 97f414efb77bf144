"""bench.timing with fake clocks: the interleaving, settling, stopping rules and the GPU
bookkeeping (events, L2 flush, host time). Nothing here is timed for real (one test
sleeps 60 ms so that a warm-up call is slow)."""

import time

import pytest
import torch

from bench.timing import (MIB, Candidate, CpuClock, CudaClock, TimingConfig, flush_bytes, ratio_interval, summarize,
                          time_interleaved)


class ScriptedClock:
    """A clock whose samples are given per candidate; logs the blocks it ran."""

    def __init__(self, samples_by_fn):
        self.samples_by_fn = samples_by_fn  # fn -> callable(i) -> ns, i counts that fn's samples
        self.blocks = []
        self.count = {}

    def block(self, fn, sync, reps):
        self.blocks.append((fn, reps))
        out = []
        for _ in range(reps):
            fn()
            sync()
            i = self.count[fn] = self.count.get(fn, -1) + 1
            out.append(self.samples_by_fn[fn](i))
        return out, None


def counting(log, name):
    def fn():
        log.append(name)
    return fn


FAST = TimingConfig(warmup_s=0.0, min_reps=4, max_reps=12, target_rel_iqr=0.05, budget_s=60.0, block_s=0.0,
                    settle_s=0.01)


def test_summarize_median_and_iqr():
    s = summarize([1, 2, 3, 4, 100])
    assert s["median"] == 3 and s["q1"] == 2 and s["q3"] == 4 and s["iqr"] == 2
    assert s["rel_iqr"] == pytest.approx(2 / 3) and s["n"] == 5 and s["min"] == 1
    assert summarize([])["median"] is None


def test_rounds_alternate_order_and_settle_between_blocks(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    calls, sleeps = [], []
    a, b = counting(calls, "A"), counting(calls, "B")
    clock = ScriptedClock({a: lambda i: 1000, b: lambda i: 2000})
    out = time_interleaved([Candidate("A", a), Candidate("B", b)], FAST, clock=clock, sleep=sleeps.append)
    order = [("A" if fn is a else "B") for fn, _ in clock.blocks]
    assert order[:4] == ["A", "B", "B", "A"]  # reversed every other round
    assert len(sleeps) == len(clock.blocks) and set(sleeps) == {0.01}
    assert out["A"].stats["median"] == 1000 and out["B"].stats["median"] == 2000
    assert all(m.stop_reason == "precision" for m in out.values())  # constant samples: IQR 0


def test_no_settle_when_idle_workers_sleep(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    sleeps = []
    a = lambda: None  # noqa: E731
    time_interleaved([Candidate("A", a)], FAST, clock=ScriptedClock({a: lambda i: 1000}), sleep=sleeps.append)
    assert sleeps == []


def test_fixed_order_and_wake_call_per_block():
    calls = []
    a, b = counting(calls, "A"), counting(calls, "B")
    clock = ScriptedClock({a: lambda i: 1000, b: lambda i: 1000})
    cfg = TimingConfig(**{**FAST.__dict__, "alternate": False, "settle_s": 0.0})
    time_interleaved([Candidate("A", a), Candidate("B", b)], cfg, clock=clock)
    order = [("A" if fn is a else "B") for fn, _ in clock.blocks]
    assert order == ["A", "B"] * (len(order) // 2)
    # warm-up (one call each, warmup_s=0), then per block one untimed wake call + reps
    timed = sum(reps for _, reps in clock.blocks)
    assert len(calls) == 2 + len(clock.blocks) + timed


def test_noisy_samples_stop_at_max_reps_or_budget():
    noisy = {}
    a = lambda: None  # noqa: E731
    noisy[a] = lambda i: 1000 if i % 2 else 5000  # IQR/median far above the target
    cfg = TimingConfig(**{**FAST.__dict__, "settle_s": 0.0})
    out = time_interleaved([Candidate("A", a)], cfg, clock=ScriptedClock(noisy))
    assert out["A"].stop_reason == "max_reps" and len(out["A"].samples_ns) == cfg.max_reps
    cfg = TimingConfig(**{**FAST.__dict__, "settle_s": 0.0, "budget_s": 0.0})
    out = time_interleaved([Candidate("A", a)], cfg, clock=ScriptedClock(noisy))
    assert out["A"].stop_reason == "budget" and out["A"].rounds == 1


def test_block_size_follows_the_per_call_estimate_up_to_a_tenth_of_max_reps():
    a = lambda: None  # noqa: E731
    clock = ScriptedClock({a: lambda i: 1000})
    cfg = TimingConfig(**{**FAST.__dict__, "block_s": 10.0, "settle_s": 0.0, "max_reps": 100})
    out = time_interleaved([Candidate("A", a)], cfg, clock=clock)  # a trivial fn would fit all in one block
    assert clock.blocks[0][1] == 10 and out["A"].rounds >= cfg.min_rounds


def test_a_first_call_that_compiles_does_not_make_a_fast_closure_slow():
    """The warm-up's only call took 60 ms (a compile); the samples say 10 us. From the
    second block on the closure gets a block of many repetitions and its wake call."""
    calls = []

    def fn():
        if not calls:
            time.sleep(0.06)
        calls.append(1)

    clock = ScriptedClock({fn: lambda i: 10_000})
    cfg = TimingConfig(**{**FAST.__dict__, "block_s": 0.02, "settle_s": 0.0, "max_reps": 300, "min_reps": 50})
    time_interleaved([Candidate("A", fn)], cfg, clock=clock)
    reps = [r for _, r in clock.blocks]
    assert reps[0] == 1 and set(reps[1:]) == {30}, reps  # 0.02 s / 10 us, capped at max_reps / 10
    assert len(calls) == 1 + sum(reps) + len(reps) - 1  # warm-up, samples, a wake call per later block


def test_duplicate_names_are_refused():
    f = lambda: None  # noqa: E731
    with pytest.raises(ValueError, match="distinct"):
        time_interleaved([Candidate("A", f), Candidate("A", f)], FAST)


def test_cpu_clock_syncs_every_call():
    ticks = iter(range(0, 1000, 10))
    syncs = []
    samples, host = CpuClock(now=lambda: next(ticks)).block(lambda: None, lambda: syncs.append(1), 3)
    assert samples == [10, 10, 10] and host is None and len(syncs) == 3


def test_flush_buffer_is_twice_the_l2_in_whole_mib():
    assert flush_bytes(50 * MIB, floor=0) == 100 * MIB
    assert flush_bytes(40 * MIB + 1, floor=0) == 81 * MIB
    assert flush_bytes(0) == 64 * MIB  # unknown L2: the floor
    assert flush_bytes(60 * MIB) == 120 * MIB


class FakeDevice:
    """A device timeline: kernels and flushes advance it; events read it."""

    def __init__(self):
        self.t_ms = 0.0
        self.log = []

    def event(self):
        dev = self

        class Event:
            def record(self):
                self.at = dev.t_ms
                dev.log.append("event")

            def elapsed_time(self, other):
                return other.at - self.at

        return Event()

    def flush_buffer(self):
        dev = self

        class Flush:
            def zero_(self):
                dev.t_ms += 5.0  # the flush itself is outside the events
                dev.log.append("flush")

        return Flush()


def test_cuda_clock_flushes_l2_before_each_repetition_and_keeps_host_time_apart():
    dev = FakeDevice()
    syncs = []
    host_ticks = iter(range(0, 10_000, 7))
    clock = CudaClock(device="cpu", event=dev.event, flush=dev.flush_buffer(), synchronize=lambda: syncs.append(1),
                      now=lambda: next(host_ticks))

    def kernel():
        dev.t_ms += 0.25
        dev.log.append("kernel")

    samples, host = clock.block(kernel, lambda: None, 4)
    assert samples == [250_000] * 4  # 0.25 ms each, the flush excluded
    assert host == [7] * 4  # host time of the call alone
    assert dev.log == ["flush", "event", "kernel", "event"] * 4
    assert len(syncs) == 1  # one synchronize per block, after the last event


def test_cuda_clock_plugs_into_the_rounds():
    dev = FakeDevice()
    clock = CudaClock(device="cpu", event=dev.event, flush=dev.flush_buffer(), synchronize=lambda: None)

    def kernel():
        dev.t_ms += 1.0

    out = time_interleaved([Candidate("gpu", kernel)], TimingConfig(**{**FAST.__dict__, "settle_s": 0.0}), clock=clock)
    m = out["gpu"]
    assert m.stats["median"] == 1_000_000 and len(m.host_ns) == len(m.samples_ns)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_clock_on_a_real_device():
    x = torch.randn(1 << 20, device="cuda")
    clock = CudaClock("cuda")
    assert clock.flush.numel() >= 2 * torch.cuda.get_device_properties(0).L2_cache_size
    samples, host = clock.block(lambda: x.mul_(1.0), lambda: None, 3)
    assert len(samples) == 3 and all(s > 0 for s in samples) and len(host) == 3


def test_ratio_interval_brackets_the_ratio_of_medians():
    import numpy as np

    rng = np.random.default_rng(0)
    base, other = 200 * (1 + 0.05 * rng.standard_normal(60)), 100 * (1 + 0.05 * rng.standard_normal(60))
    lo, hi = ratio_interval(base, other)
    assert lo < np.median(base) / np.median(other) < hi and 1.8 < lo and hi < 2.2
    assert ratio_interval([5.0] * 10, [5.0] * 10) == (1.0, 1.0)


def test_spin_free_follows_libgomp_precedence():
    from bench import env

    assert not env.spin_free({})
    assert env.spin_free({"OMP_WAIT_POLICY": "passive"})
    assert not env.spin_free({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "300000"})  # the count wins
    assert env.spin_free({"GOMP_SPINCOUNT": "0"}) and not env.spin_free({"OMP_WAIT_POLICY": "ACTIVE"})


def test_allocator_thresholds_are_fixed_unless_the_user_set_them(monkeypatch):
    import platform

    from bench import env

    if platform.libc_ver()[0] != "glibc":
        assert env.fix_allocator() == {}
        return
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")  # the user's choice is kept
    monkeypatch.setattr(env, "_allocator", {})
    assert env.fix_allocator() == {"mmap_threshold": env.MALLOC_SETTINGS["mmap_threshold"]}
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    assert env.fix_allocator() == env.MALLOC_SETTINGS
    assert env.environment()["malloc"] == env.MALLOC_SETTINGS


def test_steal_fraction_from_two_readings():
    from bench import env

    assert env.steal_fraction((10, 1000), (60, 2000)) == 0.05
    assert env.steal_fraction(None, (1, 2)) is None and env.steal_fraction((5, 100), (5, 100)) is None
    now = env.cpu_times()
    assert now is None or (0 <= now[0] <= now[1])
