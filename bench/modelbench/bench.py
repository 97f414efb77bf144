"""Model benchmarks (DESIGN.md 9): one family config x mix x shape per group.

For each run of a grid (suites/model_runs.py) every mix is
1. resolved (a mix this machine cannot run is recorded "unavailable" with the reason);
2. gated: the same weights under the mix and under all-torch give the same hidden
   states and gradients (bench/modelbench/gate.py); a failing mix is "incorrect", never timed;
3. prepared: one model per mix holding the same weights, its training-step closure
   (forward, LM loss, backward, AdamW step with lr 0 so the weights and the work stay
   the same from one repetition to the next), and the peer ``torch_compile``: the
   all-torch model with its step compiled once (loop-bound families) or its whole loss
   compiled (the others), ``compiled_loss``; the optimizer step stays eager;
4. timed interleaved with the others (bench/timing.py), then prefill (no-grad forward
   of the whole sequence) and decode (one token from the prefilled state) likewise;
5. profiled once: peak memory of one step (CUDA: the allocator's peak; CPU: the running
   sum of torch.profiler's allocation and free events, which sees torch tensors only),
   and each op's share of the step from the ``op/backend/phase`` spans every op call
   opens (bench/modelbench/profile.py; summed per op; "rest" is the clocked step minus the
   ops; ``breakdown_step_ns`` against ``median_ns`` says how well the rows cover the
   timed step).
Records (kind="model", fields in bench/results.py) are appended as produced, each with
the peak resident set of the process that measured it (``process_peak_rss_bytes``). Mix ids:
backends/mix.py; profiling: bench/modelbench/profile.py; slopes, break-even and the best
mix: bench/modelbench/fits.py; training equivalence: bench/modelbench/equivalence.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

import backends
import models
from bench import env, load, measure, results
from bench.modelbench import gate as model_gate
from backends.mix import mix_id, parse_mix
from bench.modelbench.peers import GRID_PEERS, MODEL_PEERS as PEERS
from bench.modelbench import metrics
from bench.modelbench.profile import sync_of
from bench.timing import Candidate, CpuClock, CudaClock, TimingConfig, summarize, time_interleaved


# ---------------------------------------------------------------------------
# Closures
# ---------------------------------------------------------------------------


def lm_batch(vocab: int, B: int, T: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, vocab, (B, T + 1), generator=g).to(device)
    return seq[:, :-1], seq[:, 1:]  # tokens, targets: [B, T]


def lm_loss(model, tokens, targets):
    hidden, _ = model(tokens)
    return F.cross_entropy(model.logits(hidden).flatten(0, 1).float(), targets.flatten())


def step_closure(loss_fn: Callable, model, tokens, targets) -> Callable[[], None]:
    """Forward, backward and an AdamW step (lr 0: same weights, same work each call)."""
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model, tokens, targets).backward()
        opt.step()

    return step


def prefill_closure(model, tokens):
    def prefill():
        with torch.no_grad():
            model(tokens)

    return prefill


def decode_closure(model, tokens):
    """One new token from the state of the prefilled sequence (the state is reused, so
    a KV cache keeps its length from call to call)."""
    with torch.no_grad():
        _, state = model(tokens)
    last = tokens[:, -1:]

    def decode():
        with torch.no_grad():
            model(last, state)

    return decode


# ---------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelBenchConfig:
    device: str = "cpu"
    timing: TimingConfig = TimingConfig(budget_s=4.0, block_s=0.0, max_reps=60, min_reps=5, warmup_s=0.0)
    decode_timing: TimingConfig = TimingConfig(budget_s=1.0, max_reps=100, min_reps=5, warmup_s=0.0)
    breakdown: bool = True  # profile the per-op shares and peak memory
    prefill: bool = True  # time prefill and decode too
    gate_T: int = 32  # tokens of the gate's sequences
    seed: int = 0
    load: load.LoadConfig = load.LoadConfig()  # when a group counts as disturbed, and the pause
    # each group in a fresh process (the CLI's choice): measured in one process, a group
    # ran up to 2.8x slower after the stackformer's group than alone (nsm B4-T1024:
    # 1,299 ms after it, 464 ms alone), so later groups carried earlier ones' leftovers
    isolate: bool = False


@dataclass
class Prepared:
    name: str
    model: torch.nn.Module
    step: Callable[[], None]
    compile_seconds: float | None = None
    extra: dict = field(default_factory=dict)


def compiled_loss(model, whole: bool = False) -> tuple[Callable, str]:
    """A compiled peer's loss for ``model`` (all-torch) and its scope. ``torch_compile``: a
    loop-bound family (``step_loop`` names its step) has that step compiled once and its
    Python loop calls it, a compile time independent of T ("step"); any other family's
    whole loss is compiled ("model"; an op's own token loop, the torch gated_update's
    bounded forward, stays eager inside it). ``whole`` (``torch_compile_model``): the whole
    loss, loop or not: dynamo unrolls a loop over time where it can trace it (minutes of
    compiling growing with T, issue 20) and breaks the graph where it cannot, the
    reference a compiled step is judged against."""
    if not whole and model.step_loop(model.config).methods:
        model.compile_step()
        return lm_loss, "step"
    return torch.compile(lm_loss), "model"


def prepare(name: str, config, tokens, targets, reference, device="cpu") -> Prepared:
    """The training-step closure of ``config`` under mix ``name`` (or the peer
    ``torch_compile``: ``compiled_loss``) holding ``reference``'s weights; the first calls
    (JIT, autotune, compile) happen here and are reported as ``compile_seconds``, never
    timed. A peer's ``extra`` holds ``compile_scope``."""
    compiled = name in PEERS
    ops = backends.resolve("torch" if compiled else parse_mix(name), device)
    model = models.build(config, ops)
    model.load_state_dict(reference.state_dict())
    loss, extra = lm_loss, {}
    if compiled:
        from bench.ops.peers import raise_recompile_limit

        raise_recompile_limit()
        loss, extra["compile_scope"] = compiled_loss(model, whole=name == "torch_compile_model")
    step = step_closure(loss, model, tokens, targets)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    return Prepared(name, model, step, compile_seconds=max(0.0, first - (time.perf_counter() - t0)), extra=extra)


def peak_rss_bytes() -> int:
    """This process's peak resident set so far (getrusage; Linux reports KiB, macOS
    bytes): with ``isolate`` (the CLI) the group's own process, so its peak is the group's."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def prepare_run(family: str, overrides: dict, name: str, B: int, T: int, device="cpu", seed: int = 0) -> Prepared:
    """One mix's prepared step for a family config and shape, from scratch (the
    pytest-benchmark and asv front ends; `arsenal models` shares one reference per group)."""
    config = models.config(family, **overrides)
    reference = models.build(config, backends.resolve("torch", device))
    tokens, targets = lm_batch(config.vocab_size, B, T, device, seed)
    return prepare(name, config, tokens, targets, reference, device)


@dataclass(frozen=True)
class Ready:
    status: str  # "ready" | "unavailable" | "incorrect"
    error: str | None = None
    prepared: Prepared | None = None


def gate_then_prepare(family: str, overrides: dict, name: str, B: int, T: int, device="cpu",
                      gate_T: int = 32) -> Ready:
    """What `arsenal models` does per mix, for the pytest-benchmark and asv front ends:
    resolve (unavailable: the reason), gate against all-torch (incorrect: never
    prepared), then prepare the step."""
    config = models.config(family, **overrides)
    if name not in PEERS:
        try:
            models.build(config, backends.resolve(parse_mix(name), device))
        except ValueError as exc:
            return Ready("unavailable", str(exc))
        if name != "torch":
            g = model_gate.gate(config, parse_mix(name), device, T=min(T, gate_T))
            if not g["ok"]:
                return Ready("incorrect", "; ".join(g["problems"]))
    return Ready("ready", None, prepare_run(family, overrides, name, B, T, device))


def _run_isolated(conn, cfg: ModelBenchConfig, out, run_id: str, group: int, threads: int, args: tuple) -> None:
    """``ModelBench.run`` in a spawned process (the parent's thread count and allocator
    settings, its run id and group number), talking over ``conn``: ("log", message) as
    it goes, then ("done", records) or ("error", text)."""
    import dataclasses
    import traceback

    try:
        env.pin_process(threads)
        bench = ModelBench(dataclasses.replace(cfg, isolate=False), out=out, log=lambda msg: conn.send(("log", msg)),
                           announce=False)
        bench.run_id, bench.group = run_id, group
        conn.send(("done", bench.run(*args)))
    except Exception:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class ModelBench:
    """``groups``: how many ``run`` calls the caller will make (progress lines say
    'model group i/n'; None: 'model group i'). ``announce``: log a line as each group
    starts with the seconds since this bench began (False in an isolated group's process,
    whose parent announces it)."""

    def __init__(self, cfg: ModelBenchConfig = ModelBenchConfig(), out=None, log=lambda msg: None,
                 groups: int | None = None, announce: bool = True):
        self.cfg, self.out, self.log = cfg, out, log
        self.groups, self.announce, self.t0 = groups, announce, time.monotonic()
        self.run_id = results.new_run_id()
        self.group = 0
        self.clock = CudaClock(cfg.device) if torch.device(cfg.device).type == "cuda" else CpuClock()
        self.env = env.environment(cfg.device)

    def _run_in_child(self, args: tuple) -> list[dict]:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_run_isolated, daemon=True,
                            args=(there, self.cfg, self.out, self.run_id, self.group, torch.get_num_threads(), args))
        child.start()
        there.close()  # the child holds the sending end now: EOF here once it exits
        try:
            while True:
                try:
                    kind, payload = here.recv()
                except EOFError:
                    child.join()
                    raise RuntimeError(f"model group {args[0]}-{args[1]} B{args[3]}-T{args[4]}: its process "
                                       f"exited with code {child.exitcode} before reporting") from None
                if kind == "log":
                    self.log(payload)
                elif kind == "done":
                    return payload
                else:
                    raise RuntimeError(f"model group {args[0]}-{args[1]} B{args[3]}-T{args[4]} failed in its "
                                       f"process:\n{payload}")
        finally:
            here.close()
            child.join()

    def _record(self, family, config_id, config, name, B, T, role) -> dict:
        return results.new_record("model", run_id=self.run_id, env=None, group=self.group, family=family,
                                  config_id=config_id, config=config.to_dict(), mix_id=name,
                                  mix=None if name in PEERS else parse_mix(name), backend=name, task="lm",
                                  case={"B": B, "T": T}, case_id=f"B{B}-T{T}", role=role, device=self.cfg.device,
                                  dtype="float32", status=None, error=None, gate=None, compile_seconds=None, load=None)

    def run(self, family: str, config_id: str, overrides: dict, B: int, T: int, mixes, peers=GRID_PEERS,
            role: str = "grid", refused: dict | None = None) -> list[dict]:
        """One group: every mix and peer of one family config and shape, interleaved.
        ``refused`` maps a peer to why it is not run here (recorded "unavailable").
        With ``cfg.isolate`` the group runs in a fresh (spawned) process that appends the
        records itself; its progress goes to this bench's ``log`` and the records come
        back here as well."""
        if self.announce:
            of = f"/{self.groups}" if self.groups else ""
            self.log(f"model group {self.group + 1}{of}: {family}-{config_id} B{B}-T{T} "
                     f"({time.monotonic() - self.t0:.0f} s)")
        if self.cfg.isolate:
            out = self._run_in_child((family, config_id, overrides, B, T, list(mixes), tuple(peers), role, refused))
            self.group += 1
            return out
        refused = refused or {}
        device = self.cfg.device
        config = models.config(family, **overrides)
        # canonical ids: the same mix has the same name in every record (backends/mix.py)
        names = list(dict.fromkeys([n if n in PEERS else mix_id(n) for n in mixes] + list(peers)))
        records = {n: self._record(family, config_id, config, n, B, T, role) for n in names}
        reference = models.build(config, backends.resolve("torch", device))
        params = models.parameter_count(reference)
        tokens, targets = lm_batch(config.vocab_size, B, T, device, self.cfg.seed)
        prepared: dict[str, Prepared] = {}
        for name in names:
            rec = records[name]
            rec["params"] = params
            if name in refused:
                rec.update(status="unavailable", error=refused[name])
                continue
            if name not in PEERS:
                try:
                    ops = backends.resolve(parse_mix(name), device)
                    models.build(config, ops)  # refuses a mix without the gradients training needs
                except ValueError as exc:
                    rec.update(status="unavailable", error=str(exc))
                    continue
                if name != "torch":
                    self.log(f"{family}-{config_id} [{name}]: gate")
                    try:
                        rec["gate"] = model_gate.gate(config, parse_mix(name), device, T=min(T, self.cfg.gate_T))
                    except Exception as exc:
                        rec.update(status="error", error=f"gate: {measure.error_text(exc)}")
                        continue
                    if not rec["gate"]["ok"]:
                        rec.update(status="incorrect", error="; ".join(rec["gate"]["problems"]))
                        continue
            self.log(f"{family}-{config_id} B{B}-T{T} [{name}]: prepare")
            try:
                prepared[name] = prepare(name, config, tokens, targets, reference, device)
            except Exception as exc:
                rec.update(status="error", error=f"prepare: {measure.error_text(exc)}")
                continue
            rec["compile_seconds"] = prepared[name].compile_seconds
            rec.update(prepared[name].extra)
        self.log(f"{family}-{config_id} B{B}-T{T}: timing {', '.join(prepared)}")
        self._time(prepared, records, B * T)
        if self.cfg.prefill:
            self._time_inference(prepared, records, tokens)
        if self.cfg.breakdown:  # the registered model metrics (bench/modelbench/metrics.py)
            for name, p in prepared.items():
                if records[name]["status"] == "ok":
                    records[name].update(metrics.measure(metrics.MetricContext(
                        name, p.model, p.step, tokens, device, peer=name in PEERS)))
        out = [records[n] for n in names]
        rss = peak_rss_bytes()
        for rec in out:
            rec["env"] = self.env
            rec["process_peak_rss_bytes"] = rss
            if self.out is not None:
                results.append(self.out, rec)
        if self.out is not None and hasattr(reference, "routing_weights"):
            self._routing(reference, config_id, tokens)
        self.group += 1
        return out

    def _routing(self, model, config_id: str, tokens, T: int = 64) -> None:
        """Routing weights of one example (token x state per layer) for the report's
        heatmaps, state usage and entropy (kind="routing"); the weights do not depend on
        the mix (the gate holds them equal), so the all-torch build gives them."""
        from models.nsm import routing_records

        with torch.no_grad():
            weights = model.routing_weights(tokens[:1, :T])
            communication = model.communication_weights(tokens[:1, :T]) if model.config.communication else None
        for rec in routing_records(weights, tokens[:1, :T], None, config_id=config_id, family=model.config.family,
                                   communication=communication):
            fields = {k: v for k, v in rec.items() if k != "kind"}
            results.append(self.out, results.new_record("routing", run_id=self.run_id, env=self.env, **fields,
                                                        group=self.group, device=self.cfg.device, status="ok"))

    def _time(self, prepared: dict, records: dict, tokens_per_step: int) -> None:
        """Interleaved training steps through the one measurement path (bench/measure.py):
        a disturbed group is timed once more after a pause, a step that raises is an error."""
        if not prepared:
            return
        sync = sync_of(self.cfg.device)
        cfg = measure.MeasureConfig(timing=self.cfg.timing, load=self.cfg.load,
                                    cpu=torch.device(self.cfg.device).type != "cuda")
        got = measure.group({n: (p.step, sync) for n, p in prepared.items()}, cfg, clock=self.clock, log=self.log)
        for name, why in got.errors.items():
            records[name].update(status="error", error=why)
            del prepared[name]
        for name, fields in got.fields.items():
            records[name].update(fields, status="ok", tokens_per_s=tokens_per_step / (fields["median_ns"] / 1e9))

    def _time_inference(self, prepared: dict, records: dict, tokens) -> None:
        sync = sync_of(self.cfg.device)
        mixes = {n: p for n, p in prepared.items() if n not in PEERS and records[n]["status"] == "ok"}
        if not mixes:
            return
        B, T = tokens.shape
        pre = time_interleaved([Candidate(n, prefill_closure(p.model, tokens), sync) for n, p in mixes.items()],
                               self.cfg.decode_timing, clock=self.clock)
        for name, m in pre.items():
            records[name]["prefill_tokens_per_s"] = B * T / (summarize(m.samples_ns)["median"] / 1e9)
        dec = time_interleaved([Candidate(n, decode_closure(p.model, tokens), sync) for n, p in mixes.items()],
                               self.cfg.decode_timing, clock=self.clock)
        for name, m in dec.items():
            records[name]["decode_ns_per_token"] = summarize(m.samples_ns)["median"]


