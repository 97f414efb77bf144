"""The cache-packed micro-MLP layout of the numba_cpu backend: alignment and round trips."""

import pytest
import torch

pytest.importorskip("numba")
packed = pytest.importorskip("backends.numba_cpu.packed")
from backends.ops.micro_mlp import LAYOUT, RECORD, init_params  # noqa: E402


@pytest.mark.parametrize("shape", [(1,), (3, RECORD), (17, RECORD), (5, 7, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_aligned_empty(shape, dtype):
    for _ in range(8):  # several allocations: torch may hand back differently offset blocks
        t = packed.aligned_empty(shape, dtype)
        assert t.shape == shape and t.dtype == dtype and t.is_contiguous()
        assert t.data_ptr() % packed.CACHE_LINE == 0


def test_records_start_on_cache_lines():
    records = packed.packed(init_params(9))
    assert records.stride(0) * records.element_size() == 7 * packed.CACHE_LINE
    for d in range(records.shape[0]):
        assert records[d].data_ptr() % packed.CACHE_LINE == 0


def test_packed_is_zero_copy_when_aligned_and_copies_otherwise():
    aligned = packed.aligned_copy(init_params(6))
    assert packed.packed(aligned) is aligned
    misaligned = packed.aligned_empty((6 * RECORD + 1,))[1:].view(6, RECORD)
    misaligned.copy_(init_params(6))
    assert not packed.is_aligned(misaligned)
    fixed = packed.packed(misaligned)
    assert packed.is_aligned(fixed) and torch.equal(fixed, misaligned)
    strided = init_params(6, torch.float64).t().contiguous().t()  # non-contiguous [6, 112]
    assert torch.equal(packed.packed(strided), strided)


def test_pack_unpack_round_trip():
    params = init_params(11, seed=3)
    params[:, LAYOUT["alpha_h"]] = 0.5
    params[:, LAYOUT["alpha_out"]] = -0.25
    parts = packed.unpack(params)
    assert parts["W2"].shape == (11, 7, 7) and parts["b3"].shape == (11,)
    # W2[d, j, i] (j = output) sits at 14 + 7 j + i of record d
    assert parts["W2"][4, 2, 5] == params[4, 14 + 7 * 2 + 5]
    again = packed.pack(**parts)
    assert packed.is_aligned(again)
    assert torch.equal(again[:, :80], params[:, :80])
    assert torch.all(again[:, 80:] == 0)
    with pytest.raises(ValueError, match="missing"):
        packed.pack(w1=parts["w1"])


def test_transposed_round_trip():
    params = init_params(37, seed=1)
    columns = packed.transposed(params)
    assert columns.shape == (RECORD, 37) and packed.is_aligned(columns)
    assert torch.equal(columns[14 + 7 * 3 + 1], params[:, 14 + 7 * 3 + 1])
    back = packed.untransposed(columns)
    assert packed.is_aligned(back) and torch.equal(back, params)


@pytest.mark.parametrize("D", [1, 16, 37])
def test_blocked_round_trip(D):
    params = init_params(D, seed=2)
    blocks = packed.blocked(params, 16)
    nb = -(-D // 16)
    assert blocks.shape == (nb, RECORD, 16) and packed.is_aligned(blocks)
    d = D - 1  # parameter k of unit d sits at [d // 16, k, d % 16]
    assert torch.equal(blocks[d // 16, :, d % 16], params[d])
    assert torch.all(blocks.transpose(1, 2).reshape(nb * 16, RECORD)[D:] == 0)
    back = packed.unblocked(blocks, D)
    assert packed.is_aligned(back) and torch.equal(back, params)
