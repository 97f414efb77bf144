"""Atomic, checksummed checkpoints and the random-number state of a process.

    bench.train.checkpoint.save(path, {"model": ..., "rng": bench.train.checkpoint.rng_state(), ...})
    state = bench.train.checkpoint.load(path, fields=("model", "rng"))
    bench.train.checkpoint.set_rng_state(state["rng"])

The file: a header of two text lines, then the payload (the bytes of ``torch.save``)::

    arsenal-checkpoint 1\\n
    sha256 <64 hex digits> <payload length in bytes>\\n
    <payload>

``save`` serializes the state in memory, hashes it and writes header and payload to a
temporary file in the same directory, fsyncs it, renames it over the target
(``os.replace`` is atomic within one file system) and fsyncs the directory, so a process
killed at any moment leaves either the previous checkpoint or the new one, never a torn
file. ``load`` checks the header, the payload's length and its sha256 before unpickling
(torch.load does not check the zip's CRCs: a flipped byte inside a tensor loads silently).

Older checkpoints (written before the checksum) are plain torch zip files: a file that
starts with the zip signature ``PK\\x03\\x04`` is loaded unverified; anything else that
lacks the header is refused. Every refusal is a ``CheckpointError`` (a ValueError: the
commands turn it into exit status 2) naming the file and what is wrong with it.
``load`` reads with ``weights_only=False``: a checkpoint holds Python's and NumPy's
generator states besides tensors, and it is this project's own file.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

MAGIC = b"arsenal-checkpoint 1\n"
ZIP_SIGNATURE = b"PK\x03\x04"  # torch.save's format: checkpoints before the checksum
_DIGEST_LINE = re.compile(rb"sha256 ([0-9a-f]{64}) ([0-9]{1,15})\n")
_DIGEST_LINE_MAX = len(b"sha256 ") + 64 + 1 + 15 + 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged or not an Arsenal checkpoint."""

    def __init__(self, path, why: str):
        super().__init__(f"checkpoint {str(path)!r}: {why}")


def save(path, state: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    header = MAGIC + b"sha256 %s %d\n" % (hashlib.sha256(payload).hexdigest().encode(), len(payload))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def load(path, map_location="cpu", fields: tuple[str, ...] = ()) -> dict:
    """The state saved at ``path``, verified; ``fields``: the keys the caller needs (a
    torch file without them is some other program's, refused as not a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "expected a file, found none")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
    payload = _payload(path, data)
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
    except Exception as exc:  # every unpickling failure of a damaged file: name it, never a traceback
        raise CheckpointError(path, f"the payload does not load ({describe(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"not an Arsenal checkpoint: holds a {type(state).__name__}, expected a dict")
    missing = [k for k in fields if k not in state]
    if missing:
        raise CheckpointError(path, f"not an Arsenal checkpoint: no field {', '.join(map(repr, missing))} "
                                    f"(has {', '.join(map(repr, list(state)[:8])) or 'none'})")
    return state


def _payload(path: Path, data: bytes) -> memoryview:
    """The torch.save bytes of a checkpoint file, after checking its header and checksum."""
    if not data:
        raise CheckpointError(path, "empty file (0 bytes)")
    if not data.startswith(MAGIC):
        if data.startswith(ZIP_SIGNATURE):
            return memoryview(data)  # a checkpoint from before the checksum: loaded unverified
        if MAGIC.startswith(data):
            raise CheckpointError(path, f"truncated: {len(data)} bytes, inside the header")
        raise CheckpointError(path, f"not an Arsenal checkpoint: starts with {data[:16]!r}, expected {MAGIC!r} "
                                    f"(or a torch zip file {ZIP_SIGNATURE!r} from before the checksum)")
    rest = memoryview(data)[len(MAGIC):]
    end = bytes(rest[:_DIGEST_LINE_MAX]).find(b"\n")
    line = _DIGEST_LINE.fullmatch(bytes(rest[:end + 1])) if end >= 0 else None
    if line is None:
        if end < 0 and len(rest) < _DIGEST_LINE_MAX:
            raise CheckpointError(path, f"truncated: {len(data)} bytes, inside the header")
        raise CheckpointError(path, f"damaged header: expected 'sha256 <hex> <length>', "
                                    f"got {bytes(rest[:end if end >= 0 else _DIGEST_LINE_MAX])!r}")
    digest, length = line.group(1).decode(), int(line.group(2))
    payload = rest[end + 1:]
    if len(payload) < length:
        raise CheckpointError(path, f"truncated: {len(payload)} of {length} payload bytes (a disk full or a "
                                    f"copy cut short?)")
    if len(payload) > length:
        raise CheckpointError(path, f"{len(payload) - length} bytes beyond the {length} payload bytes")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(path, f"checksum mismatch: the payload's sha256 is not the {digest[:12]}... "
                                    f"written with it (bytes changed on disk or in a copy)")
    return payload


def describe(exc: BaseException) -> str:
    """'Type: the first line of the message' (at most 200 characters), for a refusal."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else 'no message'}"


MODEL_FIELDS = ("model_config", "mix", "model")  # what a model is rebuilt from


def load_model(path, mix: dict | None = None, device: str = "cpu"):
    """The trained model of a checkpoint, for inference (evaluation weights where the run
    kept them: schedule-free's average), under ``mix`` or the run's own mix. A file that is
    not a checkpoint, or does not build a model, is refused by name (CheckpointError)."""
    import backends
    import models

    state = load(path, fields=MODEL_FIELDS)
    try:
        fields = dict(state["model_config"])
        family = fields.pop("family")
        model = models.build(models.config(family, **fields), backends.resolve(mix or state["mix"], device), train=False)
        model.load_state_dict(state.get("model_eval") or state["model"])
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:  # a foreign file with the right keys
        raise CheckpointError(path, f"does not build a model ({describe(exc)})") from None
    return model.eval()


def rng_state() -> dict:
    """Every generator a training step may draw from: torch (CPU and CUDA), NumPy, Python."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
