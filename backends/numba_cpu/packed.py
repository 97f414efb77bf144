"""The cache-packed micro-MLP layout (DESIGN 2.1) on the CPU.

A unit's record is 112 float32 = 448 bytes = seven 64-byte cache lines; with storage
that starts on a cache-line boundary every record does too, so one unit's parameters
are exactly seven lines and never share a line with a neighbour.

    aligned_empty(shape, dtype)       a tensor whose data pointer is 64-byte aligned
    packed(params)                    [D, 112] aligned and contiguous (zero-copy if already)
    pack(**parts) / unpack(records)   named parts <-> records (offsets from the contract)
    transposed(records)               [112, D] private layout: parameter k of units d..d+15
                                      is one contiguous 64-byte vector (SIMD over units)
    untransposed(columns)             [112, D] -> [D, 112] records
    blocked(records, width)           [ceil(D / width), 112, width]: the transposed layout
                                      cut into blocks of ``width`` units (one block's
                                      parameters are contiguous, 7 KB for 16 units)
    unblocked(blocks, D)              the inverse, [D, 112]
"""

import numpy as np
import torch

from backends.ops.micro_mlp import HIDDEN, LAYOUT, RECORD

CACHE_LINE = 64  # bytes


def is_aligned(t: torch.Tensor, alignment: int = CACHE_LINE) -> bool:
    return t.data_ptr() % alignment == 0


def aligned_empty(shape, dtype=torch.float32, alignment: int = CACHE_LINE) -> torch.Tensor:
    """torch.empty(shape) whose first element sits on an ``alignment``-byte boundary: a
    view into a slightly larger buffer (torch's CPU allocator aligns to 64 bytes already on
    most builds; this makes it a guarantee rather than an accident)."""
    shape = tuple(int(s) for s in shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if alignment % itemsize:
        raise ValueError(f"aligned_empty: alignment {alignment} is not a multiple of the item size {itemsize}")
    n = int(np.prod(shape, dtype=np.int64))
    buffer = torch.empty(n + alignment // itemsize, dtype=dtype)
    offset = (-buffer.data_ptr() % alignment) // itemsize
    return buffer[offset:offset + n].view(shape)


def aligned_copy(t: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``t`` in aligned storage."""
    out = aligned_empty(t.shape, t.dtype)
    out.copy_(t)
    return out


def packed(params: torch.Tensor) -> torch.Tensor:
    """The [D, 112] records in aligned contiguous storage: ``params`` itself when it already
    is (zero-copy), else an aligned copy."""
    if params.is_contiguous() and is_aligned(params):
        return params
    return aligned_copy(params)


def pack(**parts) -> torch.Tensor:
    """Records from named parts (w1 [D, 7], b1 [D, 7], W2 [D, 7, 7] (out, in), b2 [D, 7],
    w3 [D, 7], b3 [D], alpha_h [D], alpha_out [D]); the padding is zero."""
    missing = set(LAYOUT) - {"padding"} - set(parts)
    if missing:
        raise ValueError(f"pack: missing parts {sorted(missing)}")
    first = parts["w1"]
    D = first.shape[0]
    out = aligned_empty((D, RECORD), first.dtype)
    out.zero_()
    for name, where in LAYOUT.items():
        if name != "padding":
            out[:, where] = parts[name].reshape(D, where.stop - where.start)
    return out


def unpack(records: torch.Tensor) -> dict:
    """[D, 112] -> named views: w1 [D, 7], W2 [D, 7, 7] (out, in), b3 [D], ..."""
    D = records.shape[0]
    parts = {name: records[:, where] for name, where in LAYOUT.items() if name != "padding"}
    parts["W2"] = parts["W2"].reshape(D, HIDDEN, HIDDEN)
    for name in ("b3", "alpha_h", "alpha_out"):
        parts[name] = parts[name][:, 0]
    return parts


def transposed(records: torch.Tensor) -> torch.Tensor:
    """[D, 112] records -> [112, D] aligned columns (row k holds parameter k of every unit)."""
    return aligned_copy(records.t())


def untransposed(columns: torch.Tensor) -> torch.Tensor:
    """[112, D] columns -> [D, 112] aligned records."""
    return aligned_copy(columns.t())


def blocked(records: torch.Tensor, width: int) -> torch.Tensor:
    """[D, 112] records -> [nb, 112, width] aligned, nb = ceil(D / width); the units past D
    in the last block are zero."""
    D, record = records.shape
    nb = -(-D // width)
    out = aligned_empty((nb, record, width), records.dtype)
    full = D // width
    out[:full].copy_(records[:full * width].view(full, width, record).transpose(1, 2))
    if full < nb:
        out[full].zero_()
        out[full, :, :D - full * width].copy_(records[full * width:].t())
    return out


def unblocked(blocks: torch.Tensor, D: int) -> torch.Tensor:
    """[nb, 112, width] -> [D, 112] aligned records (the padding units dropped)."""
    nb, record, width = blocks.shape
    return aligned_copy(blocks.transpose(1, 2).reshape(nb * width, record)[:D])
