"""Building blocks shared by the numba_cpu kernels of logspace_matvec, nsm_route and
banked_attention: the fastmath flags and register-blocked small matrix products.

FAST allows reassociation (so LLVM vectorises reductions: sums are then taken in
another order, a rounding-level change) and FMA contraction. It assumes nothing about
NaN or Inf, so they propagate as the contracts say.

The products are serial; callers run them on row blocks inside their own prange.
``dot_nt`` keeps a 4 x 4 block of accumulators in registers while it streams the shared
axis, so each pair of loaded vectors feeds 16 FMAs instead of one.
"""

import numpy as np
from numba import njit

from backends.numba_cpu._common import wide_vectors

FAST = {"reassoc", "contract", "nsz"}

_f32 = np.float32


@njit(cache=True, fastmath=FAST)
def _dot_row(a, i, b, j):
    s = _f32(0.0)
    for k in range(a.shape[1]):
        s += a[i, k] * b[j, k]
    return s


@njit(cache=True, fastmath=FAST)
def dot_nt(a, b, out):
    """out[i, j] = sum_k a[i, k] b[j, k].  a [I, R], b [J, R], out [I, J] (C order)."""
    wide_vectors()
    I, R = a.shape
    J = b.shape[0]
    I4, J4 = I - I % 4, J - J % 4
    for i in range(0, I4, 4):
        for j in range(0, J4, 4):
            c00 = c01 = c02 = c03 = _f32(0.0)
            c10 = c11 = c12 = c13 = _f32(0.0)
            c20 = c21 = c22 = c23 = _f32(0.0)
            c30 = c31 = c32 = c33 = _f32(0.0)
            for k in range(R):
                a0, a1, a2, a3 = a[i, k], a[i + 1, k], a[i + 2, k], a[i + 3, k]
                b0, b1, b2, b3 = b[j, k], b[j + 1, k], b[j + 2, k], b[j + 3, k]
                c00 += a0 * b0
                c01 += a0 * b1
                c02 += a0 * b2
                c03 += a0 * b3
                c10 += a1 * b0
                c11 += a1 * b1
                c12 += a1 * b2
                c13 += a1 * b3
                c20 += a2 * b0
                c21 += a2 * b1
                c22 += a2 * b2
                c23 += a2 * b3
                c30 += a3 * b0
                c31 += a3 * b1
                c32 += a3 * b2
                c33 += a3 * b3
            out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = c00, c01, c02, c03
            out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3] = c10, c11, c12, c13
            out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2], out[i + 2, j + 3] = c20, c21, c22, c23
            out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2], out[i + 3, j + 3] = c30, c31, c32, c33
        for j in range(J4, J):
            for ii in range(i, i + 4):
                out[ii, j] = _dot_row(a, ii, b, j)
    for i in range(I4, I):
        for j in range(J):
            out[i, j] = _dot_row(a, i, b, j)


@njit(cache=True, fastmath=FAST)
def acc_tn(g, x, out):
    """out[i, :] += sum_r g[r, i] x[r, :].  g [R, I], x [R, C], out [I, C] (rows of x
    and out contiguous). Four rows of x per pass over the output block (5 loads and a
    store per 4 FMAs); x is read once, so callers keep the [I, C] block cache-sized."""
    wide_vectors()
    R, I = g.shape
    C = x.shape[1]
    R4 = R - R % 4
    for r in range(0, R4, 4):  # 2-D indexing: row views here keep LLVM from vectorising
        for i in range(I):
            g0, g1, g2, g3 = g[r, i], g[r + 1, i], g[r + 2, i], g[r + 3, i]
            for c in range(C):
                out[i, c] += g0 * x[r, c] + g1 * x[r + 1, c] + g2 * x[r + 2, c] + g3 * x[r + 3, c]
    for r in range(R4, R):
        for i in range(I):
            gr = g[r, i]
            for c in range(C):
                out[i, c] += gr * x[r, c]
