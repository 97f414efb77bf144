"""The trainer's data: a task's batches epoch after epoch, or an LM stream read as TBPTT
chunks. One optimizer step consumes one global batch; ``position()`` is what a checkpoint
stores so that a resumed run reads on from the same place."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from bench.train.config import _bad


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch (a new order every epoch, the same on every process)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Batches:
    """A task's training batches, epoch after epoch; ``(epoch, index)`` resumes them."""

    def __init__(self, task, batch_size: int, seed: int, epoch: int = 0, index: int = 0):
        self.task, self.batch_size, self.seed = task, batch_size, seed
        self.epoch, self.index = epoch, index
        self._it = None

    def _open(self):
        it = self.task.batches("train", self.batch_size, seed=epoch_seed(self.seed, self.epoch))
        return itertools.islice(it, self.index, None)

    def next(self) -> tuple[dict, bool]:
        """(the next global batch, False): batch tasks never reset a state."""
        if self._it is None:
            self._it = self._open()
        batch = next(self._it, None)
        if batch is None:
            if self.index == 0:
                raise _bad("batch_size", "at most the number of training examples", self.batch_size)
            self.epoch, self.index = self.epoch + 1, 0
            self._it = self._open()
            return self.next()
        self.index += 1
        return batch, False

    def position(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}


class StreamRows:
    """A split's token stream as ``rows`` contiguous rows, read in chunks of T tokens."""

    def __init__(self, stream, rows: int, T: int, what: str):
        stream = torch.as_tensor(stream).long().flatten()
        n = (len(stream) - 1) // rows  # tokens per row that have a next token
        if n < T:
            raise ValueError(f"{what}: the stream has {len(stream)} tokens, too few for {rows} rows of "
                             f"seq_len={T} tokens each")
        self.T, self.n_chunks = T, n // T
        idx = torch.arange(rows)[:, None] * n + torch.arange(n + 1)[None, :]  # [rows, n + 1]
        self.data = stream[idx]  # row b: stream[b n : b n + n + 1]

    def chunk(self, c: int) -> dict:
        x = self.data[:, c * self.T: (c + 1) * self.T + 1]  # [rows, T + 1]
        return {"tokens": x[:, :-1], "target": x[:, 1:]}


class Stream:
    """The training stream as TBPTT chunks; ``index`` counts chunks since the start."""

    def __init__(self, rows: StreamRows, index: int = 0):
        self.rows, self.index = rows, index

    def next(self) -> tuple[dict, bool]:
        """(the next chunk of every row, whether the stream starts over: states reset)."""
        c = self.index % self.rows.n_chunks
        self.index += 1
        return self.rows.chunk(c), c == 0

    def position(self) -> dict:
        return {"index": self.index}
