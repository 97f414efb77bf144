"""The trainer (bench/train/run.py): learning, bf16, gradient accumulation, TBPTT's carried
state, the CLI layer. Tiny tasks defined here follow the suites.tasks interface so these
tests do not depend on the real tasks; tiny models (d_model 16-32, 1-2 layers, T <= 32)."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import backends
import models
from bench.train import TrainConfig, train
from models.common import SequenceModel
from models.config import ModelConfig

IGNORE = -100


class TinyClassify:
    """Label = the first token's parity (vocab 8, T 8): learnable by a causal model's mean pool."""

    kind, metric, vocab_size, n_classes, anchors = "classify", "accuracy", 8, 2, ()

    def __init__(self, n_train=256, n_eval=64, T=8, delay=0.0):
        self.sizes = {"train": n_train, "valid": n_eval, "test": n_eval}
        self.T, self.delay = T, delay  # delay: seconds per training batch (a slow run to kill)

    def _data(self, split):
        rng = np.random.default_rng({"train": 1, "valid": 2, "test": 3}[split])
        tokens = torch.from_numpy(rng.integers(1, self.vocab_size, size=(self.sizes[split], self.T)))
        return tokens, tokens[:, 0] % 2

    def batches(self, split, batch_size, seed=0):
        tokens, target = self._data(split)
        n = len(tokens)
        if split == "train":
            order = np.random.default_rng(seed).permutation(n)
            chunks = [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
        else:
            chunks = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        for rows in chunks:
            if split == "train" and self.delay:
                time.sleep(self.delay)
            rows = torch.from_numpy(rows)
            yield {"tokens": tokens[rows], "mask": torch.ones(len(rows), self.T, dtype=torch.bool),
                   "target": target[rows]}


class KeyStream:
    """An LM stream that needs memory across TBPTT chunks of 2 tokens: blocks of 64 tokens
    [0, k, 0, k, ...] with a random key k in 1..K per block. Read in rows of an even length
    and chunks [0, k], the target of the 0 (the key) is in no token of its own chunk: only
    a state carried from the previous chunk knows it. Accuracy: about 1 with the carry,
    1/2 + 1/(2K) without (the 0 after k is always right, the key is a guess)."""

    kind, metric, vocab_size, n_classes, anchors, seq_len = "lm", "accuracy", 9, None, (), 2
    K = 8

    def __init__(self, rows=8, row_len=256):
        self.length = rows * row_len + 1  # rows of row_len (even) tokens, plus the last target

    def stream(self, split):
        rng = np.random.default_rng({"train": 1, "valid": 2, "test": 3}[split])
        keys = rng.integers(1, self.K + 1, size=self.length // 64 + 1)
        s = np.zeros(self.length, dtype=np.int64)
        s[1::2] = np.repeat(keys, 32)[: len(s[1::2])]
        return torch.from_numpy(s)

    def batches(self, split, batch_size, seed=0):
        s = self.stream(split)
        x = s[: (len(s) - 1) // 2 * 2 + 1]
        yield {"tokens": x[:-1].view(-1, 2)[:batch_size], "mask": None, "target": x[1:].view(-1, 2)[:batch_size]}


class TinyText:
    """A byte stream of repeated English text: bits per byte, a sample at the end."""

    kind, metric, vocab_size, n_classes, anchors, seq_len = "lm", "bits_per_byte", 256, None, (), 16

    def stream(self, split):
        text = ("the cat sat on the mat. " * 40).encode()
        return torch.tensor(list(text), dtype=torch.int64)

    def bits_per_byte(self, loss, split="test"):
        return loss / math.log(2)

    def batches(self, split, batch_size, seed=0):
        raise NotImplementedError("the trainer reads streams")


@dataclass(frozen=True)
class TinyRNNConfig(ModelConfig):
    family = "tiny_rnn"


class TinyRNN(SequenceModel):
    """A diagonal gated recurrence h_t = a_t h_{t-1} + (1 - a_t) W_c x_t, a_t = sigmoid(W_a x_t),
    y_t = W_o [h_t, x_t] (a torch loop; the shape of elman rung 4). State: h [B, d]."""

    Config = TinyRNNConfig
    def __init__(self, config, ops):
        super().__init__(config, ops)
        d = config.d_model
        self.gate, self.cand, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(2 * d, d)

    def forward(self, tokens, state=None, mask=None):
        x = self.embed(tokens)  # [B, T, d]
        h = torch.zeros_like(x[:, 0]) if state is None else state  # [B, d]
        ys = []
        for t in range(x.shape[1]):
            a = torch.sigmoid(self.gate(x[:, t]))
            h = a * h + (1 - a) * self.cand(x[:, t])
            ys.append(self.out(torch.cat([h, x[:, t]], dim=-1)))
        return torch.stack(ys, dim=1), h


def tiny_rnn(vocab_size, d_model=32, seed=0):
    cfg = TinyRNNConfig(vocab_size=vocab_size, d_model=d_model, n_layers=1, seed=seed)
    torch.manual_seed(seed)
    return TinyRNN(cfg, backends.resolve("torch", "cpu"))


def config(**over) -> TrainConfig:
    """A tiny transformer run on TinyClassify (no file, no progress; one thread: tiny ops
    on a shared 2-core machine run several times faster without a second thread)."""
    base = dict(family="transformer", model={"d_model": 16, "n_heads": 2, "n_layers": 1}, task="tiny",
                steps=4, batch_size=8, lr=3e-3, warmup=2, eval_every=1000, eval_batches=2, out=None,
                progress=False, sample_tokens=0, device="cpu", threads=1)
    return TrainConfig(**{**base, **over})


def params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_decreases_and_records(tmp_path):
    out = tmp_path / "r.jsonl"
    res = train(config(steps=60, lr=1e-2, warmup=5, eval_every=20, out=str(out)), task=TinyClassify())
    train_losses = [r["loss"] for r in res.records if r["split"] == "train"]
    assert len(train_losses) == 3 and train_losses[-1] < 0.5 * train_losses[0]
    final = res.final
    assert final["final"] and final["split"] == "test" and final["value"] > 0.9 and final["baseline"] < 0.7
    from bench import results

    recs = results.read(out)
    assert [r["split"] for r in recs] == ["train", "val"] * 3 + ["test"]
    for r in recs:
        assert r["kind"] == "train" and r["train_id"] == res.train_id and r["metric"] == "accuracy"
        assert r["family"] == "transformer" and r["mix_id"] == "torch" and r["env"]["git"]
    assert recs[2]["steps_per_s"] > 0 and recs[2]["tokens"] == 40 * 8 * 8 and recs[2]["step"] == 40


@pytest.mark.parametrize("family", ["transformer", "elman"])
def test_bf16_learns(family):
    """--bf16 is one switch that trains (seed 002 trains its Elman in bf16): the task is
    learned as in float32, the transformer and the Elman ladder's rung 4 alike."""
    over = {} if family == "transformer" else dict(family="elman", model={"d_model": 16, "n_layers": 1, "rung": 4})
    res = train(config(bf16=True, steps=120, lr=1e-2, warmup=5, **over), task=TinyClassify())
    assert res.final["dtype"] == "bfloat16" and math.isfinite(res.final["loss"])
    assert res.final["value"] > 0.9 and res.final["baseline"] < 0.7


@pytest.mark.parametrize("clip", ["norm", "value"])
def test_accumulation_equals_a_larger_batch(clip):
    one = train(config(steps=3, accum=1, clip=clip, clip_to=0.5), task=TinyClassify()).model
    four = train(config(steps=3, accum=4, clip=clip, clip_to=0.5), task=TinyClassify()).model
    a, b = params(one), params(four)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_schedulefree_runs():
    pytest.importorskip("schedulefree")
    res = train(config(optimizer="schedulefree", steps=30, lr=1e-2, eval_every=10), task=TinyClassify())
    assert res.final["value"] > 0.8


@pytest.mark.parametrize("family", ["tiny_rnn", "elman"])
@pytest.mark.parametrize("carry", [True, False])
def test_tbptt_carries_the_state(carry, family):
    """With the state carried the key is known (accuracy near its ceiling 1/2 + 31/64: the
    first key of a block is a guess too); reset every chunk, near chance 1/2 + 1/(2K)."""
    task = KeyStream()
    if family == "elman":  # rung 4: the diagonal recurrence through ops.parallel_scan
        if "elman" not in models.FAMILIES:
            pytest.skip("elman is not registered")
        cfg = config(family="elman", model={"rung": 4, "d_model": 32, "n_layers": 1}, steps=600, lr=3e-2, warmup=5,
                     batch_size=16, carry=carry, eval_every=600, eval_batches=None, weight_decay=0.0)
        res, floor = train(cfg, task=task), 0.85
    else:
        cfg = config(family="tiny_rnn", steps=400, lr=3e-2, warmup=5, batch_size=16, carry=carry, eval_every=400,
                     eval_batches=None, weight_decay=0.0)
        res, floor = train(cfg, task=task, model=tiny_rnn(task.vocab_size)), 0.9
    chance = 0.5 + 0.5 / task.K
    if carry:
        assert res.final["value"] > floor
    else:
        assert res.final["value"] < chance + 0.08


def test_real_generated_tasks(tmp_path, monkeypatch):
    """The named tasks of suites.tasks, small: an LM task with ignored targets and a
    classifier (bidirectional transformer), built and read by the trainer itself."""
    pytest.importorskip("suites.tasks")
    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    small = dict(n_train=64, n_valid=16, n_test=16)
    for name, args, model in (("selective_copy", dict(length=16, n_tokens=4, vocab=8, **small), {}),
                              ("listops", dict(max_length=32, **small), {"causal": False})):
        res = train(config(task=name, task_args=args, model={"d_model": 16, "n_heads": 2, "n_layers": 1, **model},
                           steps=3, eval_every=2))
        f = res.final
        assert f["task"] == name and f["metric"] == "accuracy" and 0 <= f["value"] <= 1 and 0 < f["baseline"] <= 1
        assert f["anchors"] and all("value" in a for a in f["anchors"])


def test_transformer_does_not_carry_and_samples():
    res = train(config(steps=40, lr=1e-2, batch_size=4, sample_tokens=16, eval_every=20, model={"d_model": 32, "n_heads": 2, "n_layers": 1}),
                task=TinyText())
    assert res.final["metric"] == "bits_per_byte" and res.final["bits_per_byte"] == res.final["value"]
    assert res.final["value"] < res.final["baseline"]  # better than a unigram model
    assert res.sample is not None and "|" in res.sample
    with pytest.raises(ValueError, match="carry"):
        train(config(carry=True), task=TinyText())


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="field 'clip' expected"):
        TrainConfig(clip="max")
    with pytest.raises(ValueError, match="field 'batch_size' expected a multiple of accum=3"):
        TrainConfig(batch_size=8, accum=3)
    with pytest.raises(ValueError, match="field 'steps' expected an int >= 1, got 0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="unknown field 'stepz'"):
        TrainConfig.from_dict({"stepz": 3})


def test_cli_layer_builds_the_config():
    import argparse

    from bench.train import options as command

    p = argparse.ArgumentParser()
    command.add_arguments(p)
    args = p.parse_args(["--family", "transformer", "--model", "d_model=32,causal=False", "--mix",
                         "default=torch,parallel_scan=torch", "--task", "listops", "--task-args", "max_length=64",
                         "--steps", "5", "--clip", "value", "--bf16", "--no-carry", "--out", "none", "--quiet"])
    cfg = command.config_from_args(args)
    assert cfg.model == {"d_model": 32, "causal": False} and cfg.task_args == {"max_length": 64}
    assert cfg.mix == {"default": "torch", "parallel_scan": "torch"} and cfg.clip == "value" and cfg.bf16
    assert cfg.carry is False and cfg.out is None and not cfg.progress and cfg.steps == 5
    line = command.torchrun_command(cfg, 2)
    assert line[1:3] == ["-m", "torch.distributed.run"] and "bench.train" in line
    assert TrainConfig.from_dict(json.loads(line[-1])) == cfg


def test_schedulefree_missing_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "schedulefree", None)  # import fails
    with pytest.raises(ValueError, match="pip install schedulefree"):
        train(config(optimizer="schedulefree"), task=TinyClassify())


def test_cli_train_then_generate(tmp_path, monkeypatch, capsys):
    """arsenal train on a named task writes records and a checkpoint; arsenal generate
    samples from that checkpoint."""
    pytest.importorskip("suites.tasks")
    from bench import cli, results

    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    out, ck = tmp_path / "r.jsonl", tmp_path / "ck.pt"
    code = cli.main(["train", "--task", "selective_copy", "--task-args",
                     "length=16,n_tokens=4,vocab=8,n_train=32,n_valid=8,n_test=8", "--model",
                     "d_model=16,n_heads=2,n_layers=1", "--steps", "2", "--batch-size", "8", "--threads", "1",
                     "--out", str(out), "--checkpoint", str(ck), "--quiet", "--device", "cpu"])
    assert code == 0 and ck.exists()
    assert [r["split"] for r in results.read(out)] == ["train", "val", "test"]
    assert cli.main(["generate", "--checkpoint", str(ck), "--prompt-ids", "1,2,3", "--max-new-tokens", "4",
                     "--device", "cpu", "--no-stop"]) == 0
    assert "4 tokens, stopped: length" in capsys.readouterr().out
    # the confidence stop is on by default (seed 004): a 2-step model is unsure of every token
    assert cli.main(["generate", "--checkpoint", str(ck), "--prompt-ids", "1,2,3", "--max-new-tokens", "8",
                     "--device", "cpu"]) == 0
    assert "3 tokens, stopped: unsure" in capsys.readouterr().out
    assert cli.main(["train", "--steps", "0", "--quiet"]) == 2  # a bad value is a usage error


def test_schedule_warmup_then_cosine():
    res = train(config(steps=20, warmup=5, lr=1e-2, min_lr=0.1, eval_every=1), task=TinyClassify())
    lrs = [r["lr"] for r in res.records if r["split"] == "train"]
    assert lrs[:5] == pytest.approx([2e-3, 4e-3, 6e-3, 8e-3, 1e-2])  # step s uses (s + 1) / warmup
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] > 1e-3  # cosine down towards min_lr
