"""DDP (bench/train/run.py): two gloo processes on the CPU, started by torch.multiprocessing
with a free port, end with the parameters of one process trained on the same global
batches; for a classifier (with accumulation inside each process) and for TBPTT on a
stream (each process carrying the state of its rows, the checkpoint gathering them)."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed
import torch.multiprocessing as mp

from bench.train import TrainConfig, train
from tests.test_train import KeyStream, TinyClassify, config, params, tiny_rnn

WORLD = 2


def _runs(tmp: str) -> dict[str, tuple[TrainConfig, object, object]]:
    """name -> (config, task, model factory) of the runs compared (accum: per process)."""
    return {
        "classify": (config(steps=3, batch_size=8), TinyClassify, lambda: None),
        "stream": (config(family="tiny_rnn", steps=4, batch_size=8, checkpoint=os.path.join(tmp, "stream.pt")),
                   KeyStream, lambda: tiny_rnn(KeyStream.vocab_size, d_model=16)),
    }


def _worker(rank: int, port: int, tmp: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    # one group for both runs: train() uses a group that exists (a group destroyed and
    # created again on the same port can meet the old store of a slower process)
    torch.distributed.init_process_group("gloo")
    for name, (cfg, task, model) in _runs(tmp).items():
        if name == "classify":  # two micro-batches of two rows in each process
            cfg = TrainConfig.from_dict({**cfg.to_dict(), "accum": 2})
        res = train(cfg, task=task(), model=model())
        if rank == 0:
            torch.save({"params": params(res.model), "final": res.final}, os.path.join(tmp, f"{name}.ddp"))
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for name, (cfg, task, model) in _runs(str(tmp_path / "single")).items():
        one = train(cfg, task=task(), model=model())
        ddp = torch.load(tmp_path / f"{name}.ddp", weights_only=False)
        ref = params(one.model)
        for k in ref:
            torch.testing.assert_close(ddp["params"][k], ref[k], rtol=1e-5, atol=1e-6, msg=f"{name}: {k}")
        assert abs(ddp["final"]["loss"] - one.final["loss"]) < 1e-5
        assert ddp["final"]["tokens"] == one.final["tokens"]
    from bench.train import checkpoint as ckpt

    state = ckpt.load(tmp_path / "stream.pt")
    assert state["world"] == WORLD and len(state["carry"]) == WORLD  # every process's carried states
    assert all(s[0].shape == (4, 16) for s in state["carry"])  # rows of a process x d_model
