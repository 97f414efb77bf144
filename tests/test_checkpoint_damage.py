"""Damaged checkpoints (bench/train/checkpoint.py) are refused by name: truncated, empty,
random bytes, a torch file that is not an Arsenal checkpoint, a byte flipped inside the
tensor data (caught by the payload's sha256; torch.load alone does not notice). The library
raises CheckpointError naming the file and the damage; ``arsenal train --resume`` and
``arsenal generate --checkpoint`` exit 2 with that message, never a traceback, never a
fresh start over the file. A torch zip file from before the checksum still loads."""

from __future__ import annotations

import hashlib
import io
import random
import re

import pytest
import torch

from bench import cli
from bench.train import checkpoint as ckpt

TASK_ARGS = "length=16,n_tokens=4,vocab=8,n_train=32,n_valid=8,n_test=8"


def _train_argv(ck, *extra) -> list[str]:
    return ["train", "--task", "selective_copy", "--task-args", TASK_ARGS, "--model", "d_model=16,n_heads=2,n_layers=1",
            "--steps", "2", "--batch-size", "8", "--threads", "1", "--checkpoint", str(ck), "--quiet", "--device",
            "cpu", *extra]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> bytes:
    """The bytes of a real checkpoint: a tiny transformer after 2 steps."""
    pytest.importorskip("suites.tasks")
    tmp = tmp_path_factory.mktemp("ck")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARSENAL_DATA_DIR", str(tmp / "data"))
        assert cli.main(_train_argv(tmp / "good.pt")) == 0
    return (tmp / "good.pt").read_bytes()


def _payload(data: bytes) -> bytes:
    return data.split(b"\n", 2)[2]


def _flip_in_tensor(data: bytes) -> bytes:
    """One bit flipped in the middle of the largest weight's bytes (the zip entry's data)."""
    state = torch.load(io.BytesIO(_payload(data)), weights_only=False)
    w = max(state["model"].values(), key=lambda t: t.numel())
    raw = w.contiguous().numpy().tobytes()
    at = data.find(raw)
    assert at > 0 and data.count(raw) == 1
    i = at + len(raw) // 2
    return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]


def _foreign_torch(with_header: bool) -> bytes:
    buf = io.BytesIO()
    torch.save({"weights": torch.ones(3)}, buf)  # some other program's torch file: no 'config'
    if not with_header:
        return buf.getvalue()
    payload = buf.getvalue()
    return ckpt.MAGIC + b"sha256 %s %d\n" % (hashlib.sha256(payload).hexdigest().encode(), len(payload)) + payload


DAMAGE = {  # kind -> (make the bytes from a good checkpoint's, what the message says)
    "empty": (lambda d: b"", "empty file"),
    "truncated": (lambda d: d[:len(d) // 2], "truncated: .* of .* payload bytes"),
    "truncated_header": (lambda d: d[:len(ckpt.MAGIC) + 10], "truncated: .* inside the header"),
    "random": (lambda d: random.Random(0).randbytes(4096), "not an Arsenal checkpoint: starts with"),
    "flipped": (_flip_in_tensor, "checksum mismatch"),
    "trailing": (lambda d: d + b"\0" * 7, "7 bytes beyond"),
    "foreign_torch": (lambda d: _foreign_torch(False), "not an Arsenal checkpoint: no field"),
    "foreign_with_header": (lambda d: _foreign_torch(True), "not an Arsenal checkpoint: no field"),
    "legacy_truncated": (lambda d: _payload(d)[:len(_payload(d)) // 2], "the payload does not load"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_library_refuses_by_name(kind, good, tmp_path):
    make, why = DAMAGE[kind]
    bad = tmp_path / f"{kind}.pt"
    bad.write_bytes(make(good))
    with pytest.raises(ckpt.CheckpointError, match=f"{bad.name}.*{why}"):
        ckpt.load(bad, fields=("config", "model"))


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "flipped", "foreign_torch"])
def test_cli_exits_2_naming_the_file(kind, good, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    make, why = DAMAGE[kind]
    bad = tmp_path / f"{kind}.pt"
    damaged = make(good)
    bad.write_bytes(damaged)
    assert cli.main(_train_argv(bad, "--resume")) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and re.search(why, err) and "Traceback" not in err, err
    assert bad.read_bytes() == damaged  # no fresh start over the damaged file
    assert cli.main(["generate", "--checkpoint", str(bad), "--prompt-ids", "1,2", "--max-new-tokens", "2",
                     "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err, err


def test_checksum_round_trip_and_legacy_file(good, tmp_path):
    """save then load gives the state back; the header's digest is the payload's; a torch
    zip file without the header (a checkpoint from before the checksum) loads unverified."""
    digest, length = good.split(b"\n", 2)[1].split()[1:]
    assert hashlib.sha256(_payload(good)).hexdigest().encode() == digest and int(length) == len(_payload(good))
    state = {"step": 3, "w": torch.arange(5.0)}
    ckpt.save(tmp_path / "a.pt", state)
    back = ckpt.load(tmp_path / "a.pt", fields=("step",))
    assert back["step"] == 3 and torch.equal(back["w"], state["w"])
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(_payload(good))
    assert ckpt.load(legacy, fields=("config", "model"))["step"] == 2
    with pytest.raises(ckpt.CheckpointError, match="expected a file"):
        ckpt.load(tmp_path / "none.pt")


def test_resume_from_legacy_checkpoint(good, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(_payload(good))
    assert cli.main(_train_argv(legacy, "--resume")) == 0, capsys.readouterr().err
    assert ckpt.load(legacy)["step"] == 2  # a finished run: only the final test repeats
