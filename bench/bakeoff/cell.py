"""One bake-off cell: train it (bench.train) at its budget, then measure the peak memory
of one training forward+backward (outside the budget), and return its records with the
cell's identity on the final one."""

from __future__ import annotations


def _probe_batch(task, run_cfg, T: int | None) -> dict:
    """A training-sized batch: the first validation batch, or a stream's first chunk."""
    from bench.train.data import StreamRows

    if T is not None:
        return StreamRows(task.stream("valid"), run_cfg.batch_size, T, f"task {run_cfg.task!r} valid").chunk(0)
    return next(iter(task.batches("valid", run_cfg.batch_size, seed=0)))


def peak_step_memory(model, task, run_cfg) -> int | None:
    """Peak bytes of one forward+backward of a training batch (gradients dropped after)."""
    import torch

    from bench.modelbench.profile import peak_memory
    from bench.train.objective import Objective

    streams = task.kind == "lm" and hasattr(task, "stream")
    T = (run_cfg.seq_len or getattr(task, "seq_len", None)) if streams else None
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in _probe_batch(task, run_cfg, T).items()}
    objective = Objective(model, task.kind)

    def step():
        loss = objective(batch)[0]
        loss.backward()

    try:
        return peak_memory(step, device)
    finally:
        model.zero_grad(set_to_none=True)
        torch.set_grad_enabled(True)


def run_cell(spec: dict) -> list[dict]:
    """Train one cell spec (bench.bakeoff.plan); its records, the final one carrying the
    grid, the cell, the task's arguments, how the mix was chosen and the peak memory."""
    import torch

    from bench.env import fix_threads
    from bench.train import TrainConfig, train
    from suites import tasks

    cfg = TrainConfig.from_dict(spec["train"])
    threads = torch.get_num_threads()  # the trainer sets its own; an in-process grid keeps the caller's after
    try:
        task = tasks.get(cfg.task, **cfg.task_args)
        result = train(cfg, task=task)
        peak = peak_step_memory(result.model, task, cfg)
    finally:
        fix_threads(threads)
    final = result.final
    final.update(grid=spec["grid"], cell=spec["cell"], task_args=dict(cfg.task_args), mix_source=spec["mix_source"],
                 peak_mem_bytes=peak)
    return result.records
