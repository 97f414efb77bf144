"""Where the cells run. ``inline``: one after another in this process. ``ray``: each cell a
Ray task (``ray.init()`` locally, or a cluster at ``address``), one cell per worker with
the cell's own threads; records are appended as each cell finishes. A cell that fails
gives one record with status="error" and the reason; the grid goes on."""

from __future__ import annotations

import traceback
from typing import Callable


def failure_record(spec: dict, error: str) -> dict:
    """The final record of a cell that did not finish (status "error", the reason)."""
    import uuid

    from bench import env, results

    t = spec["train"]
    train_id = f"failed-{uuid.uuid4().hex[:8]}"
    return results.new_record("train", run_id=train_id, env=env.environment(t.get("device") or "cpu"), train_id=train_id, family=t["family"],
                              task=t["task"], task_args=t["task_args"], grid=spec["grid"], cell=spec["cell"],
                              mix_source=spec["mix_source"], seed=t["seed"], split="test", final=True,
                              budget_minutes=t["minutes"], budget_steps=t["steps"], status="error", error=error)


def guarded(spec: dict) -> list[dict]:
    """run_cell, with a failure turned into its record."""
    from bench.bakeoff.cell import run_cell

    try:
        return run_cell(spec)
    except Exception as exc:  # a cell's failure is a result of the grid, not the grid's end
        return [failure_record(spec, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")]


def inline(specs: list[dict], sink: Callable[[dict, list[dict]], None], **_) -> None:
    for spec in specs:
        sink(spec, guarded(spec))


def ray(specs: list[dict], sink: Callable[[dict, list[dict]], None], address: str | None = None,
        workers: int | None = None) -> None:
    """Cells as Ray tasks: each asks for its threads as CPUs (one cell per worker), results
    handed to ``sink`` in the order they finish. ``workers``: the CPUs a local Ray gets."""
    try:
        import ray as ray_lib
    except ImportError:
        raise ValueError("bakeoff: executor 'ray' needs the package: pip install 'ray>=2.9' "
                         "(or pip install -e '.[ray]')") from None
    started = not ray_lib.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        ray_lib.init(ignore_reinit_error=True, log_to_driver=False, **kwargs)
    try:
        # no retries: a cell Ray kills (its memory monitor, a lost node) is a result, and a
        # retry would repeat it unseen while the other cells share the machine with it
        remote = ray_lib.remote(max_retries=0)(guarded)
        pending = {}
        for spec in specs:
            cpus = spec["train"].get("threads") or 1
            pending[remote.options(num_cpus=cpus).remote(spec)] = spec
        while pending:
            done, _ = ray_lib.wait(list(pending), num_returns=1)
            spec = pending.pop(done[0])
            try:
                records = ray_lib.get(done[0])
            except Exception as exc:  # the worker died (OutOfMemoryError, WorkerCrashedError): the cell's record says so
                records = [failure_record(spec, f"{type(exc).__name__}: {str(exc)[:500]}")]
            sink(spec, records)
    finally:
        if started:
            ray_lib.shutdown()


EXECUTORS = {"inline": inline, "ray": ray}


def run(specs: list[dict], out: str | None = None, executor: str = "inline", on_cell=None, **options) -> list[dict]:
    """Run every spec under ``executor``; each cell's records are appended to ``out`` as
    the cell finishes and ``on_cell(spec, records)`` is called. All records, returned."""
    from bench import results

    if executor not in EXECUTORS:
        raise ValueError(f"bakeoff: executor expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    collected = []

    def sink(spec, records):
        for r in records:
            if out:
                results.append(out, r)
        collected.extend(records)
        if on_cell is not None:
            on_cell(spec, records)

    EXECUTORS[executor](specs, sink, **options)
    return collected
