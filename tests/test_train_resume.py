"""Checkpoints and resume (bench/train/run.py): a run killed with SIGKILL after a checkpoint
and resumed ends with the parameters of an uninterrupted run, bit for bit; so does a
TBPTT run whose carried states and stream position come back from the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench import results
from bench.train import checkpoint as ckpt
from bench.train import train
from tests.test_train import KeyStream, TinyClassify, TinyRNN, config, params, tiny_rnn

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, sys
from bench.train import TrainConfig, train
from tests.test_train import TinyClassify
train(TrainConfig.from_dict(json.loads(sys.argv[1])), task=TinyClassify(delay=float(sys.argv[2])))
"""


def _start(cfg, delay: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(cfg.to_dict()), str(delay)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    ck, out = tmp_path / "run.pt", tmp_path / "r.jsonl"
    cfg = config(steps=30, eval_every=10, checkpoint=str(ck), checkpoint_every=5, out=str(out))
    proc = _start(cfg, delay=0.1)  # 0.1 s a batch: about 3 s of steps, killed after the first checkpoint
    deadline = time.monotonic() + 120
    while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    log = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, log
    killed_at = ckpt.load(ck)["step"]
    assert 0 < killed_at < cfg.steps
    done = subprocess.run(_start(replace(cfg, resume=True), delay=0.0).args, cwd=ROOT, capture_output=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    state = ckpt.load(ck)
    assert state["step"] == cfg.steps
    ref = params(train(replace(cfg, checkpoint=None, out=None), task=TinyClassify()).model)
    for k in ref:
        assert torch.equal(state["model"][k], ref[k]), k
    recs = results.read(out)
    assert len({r["train_id"] for r in recs}) == 1 and recs[-1]["final"] and recs[-1]["step"] == cfg.steps
    assert [r["step"] for r in recs if r["split"] == "val"][-1] == cfg.steps


class Crash(RuntimeError):
    pass


def test_tbptt_resume_restores_state_and_position(tmp_path):
    """A crash after step 7 (checkpoints every 3 steps: resumed from step 6) gives the
    parameters of an uninterrupted run: the carried states and stream position are restored."""
    ck = tmp_path / "tbptt.pt"
    cfg = config(family="tiny_rnn", steps=12, batch_size=8, checkpoint=str(ck), checkpoint_every=3, accum=2)
    calls = {"n": 0}

    class Crashing(TinyRNN):
        def forward(self, tokens, state=None, mask=None):
            calls["n"] += 1
            if calls["n"] > 7 * cfg.accum:
                raise Crash("killed")
            return super().forward(tokens, state, mask)

    task = KeyStream(row_len=16)  # rows of 16 tokens: 8 chunks, the stream starts over at step 8
    model = tiny_rnn(task.vocab_size, d_model=16)
    model.__class__ = Crashing
    with pytest.raises(Crash):
        train(cfg, task=task, model=model)
    assert ckpt.load(ck)["step"] == 6
    resumed = train(replace(cfg, resume=True), task=task, model=tiny_rnn(task.vocab_size, d_model=16))
    ref = train(replace(cfg, checkpoint=None), task=task, model=tiny_rnn(task.vocab_size, d_model=16))
    a, b = params(resumed.model), params(ref.model)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(ValueError, match="resume: field 'lr' expected"):
        train(replace(cfg, resume=True, lr=0.5), task=task, model=tiny_rnn(task.vocab_size, d_model=16))
