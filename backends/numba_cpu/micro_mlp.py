"""micro_mlp, Numba CPU: SIMD across units over a blocked copy of the records.

Layout. The kernels read the parameters from ``packed.blocked(params, 16)``: blocks of
16 units, each block [112, 16] contiguous (7 KB), so parameter k of 16 neighbouring units
is one 64-byte vector. A row tile of x (RB rows x all D) is first copied block-major
([nb, RB, 16], so a block's rows are contiguous), then each block runs its RB rows with
one 16-lane vector per row: every FMA takes its weight vector straight from L1, and the
vector loop never touches x with its 2 KB row stride.

Why across units rather than across the elements of a column (one record in L1, its 112
weights broadcast to every lane): both orders do the same arithmetic per element, but the
column order needs each x tile transposed element by element on the way in and out,
where the unit order copies whole 64-byte segments. Measured on the project machine
(x [4096, 512], one thread, forward, both kernels built from the same unit code, best
of 8 interleaved): relu 7.8 ms across units vs 14.5 ms across elements, sin 13.5 vs
20.6, log_relu 39.9 vs 40.1 (there the 14 logarithms per element dominate either way).
The first unit-wise kernel read x in place and ran 3x slower: x's rows are 2 KB apart,
so a block's column of a tile falls into two L1 sets and, past the cache, every row was
a DRAM latency the prefetcher does not hide; the block-major tile copy fixed it.

Backward. The same walk recomputes the unit's forward values per element, then the
parameter gradients of each block accumulate into a buffer private to the row chunk
(one chunk per thread: no races, no atomics) and the chunks are summed at the end.

sin. ``sin_bounded``/``cos_bounded`` are exact only for |z| < TRIG_LIMIT; a tile whose
inputs could push a pre-activation past half of it (bounded from max |x| of the tile,
max |w1|, max |b1| and, for the second layer, sum |W2| + |b2| since |sin| <= 1) runs
libm's sin/cos instead, and so does a tile holding inf or NaN.
"""

import math

import numpy as np
import torch
from numba import njit, prange

from backends.functions import apply
from backends.numba_cpu import packed
from backends.numba_cpu._common import always_inline, as_array, nonneg, num_threads, prefer_huge_pages, wide_vectors
from backends.numba_cpu.special import TRIG_LIMIT, _fma, cos_bounded, log1p_nonneg, magnitude_bits, sin_bounded
from backends.ops.micro_mlp import LAYOUT, RECORD
from backends.registry import implements, new_output

W = 16  # units per block: one 512-bit vector of float32
RB = 64  # rows per tile: the block-major tile copies (2 x RB x D floats) stay in L2
RELU, SIN, LOG_RELU = 0, 1, 2
KIND = {"relu": RELU, "sin": SIN, "log_relu": LOG_RELU}

_F = np.float32
_ZERO, _ONE = _F(0.0), _F(1.0)

# record offsets, in units of W (the stride of a parameter inside a block)
_W1, _B1, _W2, _B2, _W3 = (LAYOUT[k].start for k in ("w1", "b1", "W2", "b2", "w3"))
_B3, _AH, _AO = (LAYOUT[k].start for k in ("b3", "alpha_h", "alpha_out"))


# ---------------------------------------------------------------------------------------
# Activations: value and derivative, float32, NaN in gives NaN out.
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _relu(z):
    return _ZERO if z < _ZERO else z


@njit(cache=True)
def _relu_grad(z):
    return _ONE if z > _ZERO else _ZERO


@njit(cache=True)
def _log_relu(z):
    return log1p_nonneg(_relu(z))


@njit(cache=True, error_model="numpy")
def _log_relu_grad(z):
    return _ONE / (_ONE + z) if z > _ZERO else _ZERO


@njit(cache=True)
def _sin_libm(z):
    return math.sin(z)


@njit(cache=True)
def _cos_libm(z):
    return math.cos(z)


# ---------------------------------------------------------------------------------------
# One unit on one element. p is the flat blocked layout; o indexes parameter 0 of the
# lane's unit, parameter k sits at o + k * W.
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _dot7(p, o, h, stride=W):
    """sum_k p[o + k stride] h[k]."""
    always_inline()
    s = p[o] * h[0]
    s = _fma(p[o + stride], h[1], s)
    s = _fma(p[o + 2 * stride], h[2], s)
    s = _fma(p[o + 3 * stride], h[3], s)
    s = _fma(p[o + 4 * stride], h[4], s)
    s = _fma(p[o + 5 * stride], h[5], s)
    return _fma(p[o + 6 * stride], h[6], s)


@njit(cache=True)
def _add7(gp, o, a, h):
    """gp[o + k W] += a h[k]: one row of the outer product dz2 h1^T."""
    always_inline()
    gp[o] += a * h[0]
    gp[o + W] += a * h[1]
    gp[o + 2 * W] += a * h[2]
    gp[o + 3 * W] += a * h[3]
    gp[o + 4 * W] += a * h[4]
    gp[o + 5 * W] += a * h[5]
    gp[o + 6 * W] += a * h[6]


@njit(cache=True)
def _layer1(p, o, u):
    """z1 = w1 u + b1: [7]."""
    always_inline()
    return (_fma(p[o + _W1 * W], u, p[o + _B1 * W]), _fma(p[o + (_W1 + 1) * W], u, p[o + (_B1 + 1) * W]),
            _fma(p[o + (_W1 + 2) * W], u, p[o + (_B1 + 2) * W]), _fma(p[o + (_W1 + 3) * W], u, p[o + (_B1 + 3) * W]),
            _fma(p[o + (_W1 + 4) * W], u, p[o + (_B1 + 4) * W]), _fma(p[o + (_W1 + 5) * W], u, p[o + (_B1 + 5) * W]),
            _fma(p[o + (_W1 + 6) * W], u, p[o + (_B1 + 6) * W]))


@njit(cache=True)
def _layer2(p, o, h):
    """z2 = W2 h + b2: [7] (W2 row-major, row j = output j)."""
    always_inline()
    return (_dot7(p, o + _W2 * W, h) + p[o + _B2 * W], _dot7(p, o + (_W2 + 7) * W, h) + p[o + (_B2 + 1) * W],
            _dot7(p, o + (_W2 + 14) * W, h) + p[o + (_B2 + 2) * W],
            _dot7(p, o + (_W2 + 21) * W, h) + p[o + (_B2 + 3) * W],
            _dot7(p, o + (_W2 + 28) * W, h) + p[o + (_B2 + 4) * W],
            _dot7(p, o + (_W2 + 35) * W, h) + p[o + (_B2 + 5) * W],
            _dot7(p, o + (_W2 + 42) * W, h) + p[o + (_B2 + 6) * W])


# ---------------------------------------------------------------------------------------
# Row tiles: copy in block-major, run the blocks, copy out.
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _gather(x, n0, rows, xb):
    """xb[b, n, j] = x[n0 + n, b W + j] for the tile's rows; returns max |x| as bits."""
    D = x.shape[1]
    m = np.int32(0)
    for n in range(rows):
        for b in range((D + W - 1) // W):
            base = nonneg((b * RB + n) * W)
            d0 = nonneg(b * W)
            for j in range(min(W, D - d0)):
                v = x[nonneg(n0 + n), d0 + j]
                xb[base + j] = v
                m = max(m, magnitude_bits(v))
    return m


@njit(cache=True)
def _scatter(yb, n0, rows, y):
    """y[n0 + n, b W + j] = yb[b, n, j] for the tile's rows."""
    D = y.shape[1]
    for n in range(rows):
        for b in range((D + W - 1) // W):
            base = nonneg((b * RB + n) * W)
            d0 = nonneg(b * W)
            for j in range(min(W, D - d0)):
                y[nonneg(n0 + n), d0 + j] = yb[base + j]


def _specialise(act, dact):
    """The unit and tile kernels for one activation (value act, derivative dact). Numba
    cannot cache a kernel that takes a function as an argument, so each activation gets
    its own closures, which call act and dact directly."""

    @njit(cache=True)
    def map7(z):
        always_inline()
        return (act(z[0]), act(z[1]), act(z[2]), act(z[3]), act(z[4]), act(z[5]), act(z[6]))

    @njit(cache=True)
    def unit(p, o, u):
        always_inline()
        h1 = map7(_layer1(p, o, u))
        g = map7(_layer2(p, o, h1))
        s = _dot7(p, o + _W3 * W, h1) + p[o + _B3 * W] + p[o + _AH * W] * _dot7(p, o + _W3 * W, g)
        return _fma(p[o + _AO * W], s, u)

    @njit(cache=True)
    def hidden_backward(p, gp, o, u, e, i, h2i, dz2i, z1i, h1, dz2, du):
        """Hidden unit i: the gradients of w3_i, b2_i, W2[i, :], b1_i, w1_i; du plus its
        share. (Indices into the tuples stay constants: a loop over i would index them
        with a variable, which Numba lowers to a switch that stops vectorisation.)"""
        always_inline()
        gp[o + (_W3 + i) * W] += e * h2i
        gp[o + (_B2 + i) * W] += dz2i
        _add7(gp, o + (_W2 + 7 * i) * W, dz2i, h1)
        dh = _fma(e, p[o + (_W3 + i) * W], _dot7(p, o + (_W2 + i) * W, dz2, 7 * W))  # e w3_i + (W2^T dz2)_i
        dz1 = dh * dact(z1i)
        gp[o + (_B1 + i) * W] += dz1
        gp[o + (_W1 + i) * W] += dz1 * u
        return _fma(p[o + (_W1 + i) * W], dz1, du)

    @njit(cache=True)
    def unit_backward(p, gp, o, u, dy):
        """Adds this element's parameter gradients into gp (same layout as p); returns du."""
        always_inline()
        z1 = _layer1(p, o, u)
        h1 = map7(z1)
        z2 = _layer2(p, o, h1)
        g = map7(z2)
        ah, ao = p[o + _AH * W], p[o + _AO * W]
        h2 = (_fma(ah, g[0], h1[0]), _fma(ah, g[1], h1[1]), _fma(ah, g[2], h1[2]), _fma(ah, g[3], h1[3]),
              _fma(ah, g[4], h1[4]), _fma(ah, g[5], h1[5]), _fma(ah, g[6], h1[6]))
        e = dy * ao  # d loss / d (w3 . h2 + b3)
        gp[o + _AO * W] += dy * (_dot7(p, o + _W3 * W, h2) + p[o + _B3 * W])
        gp[o + _B3 * W] += e
        gp[o + _AH * W] += e * _dot7(p, o + _W3 * W, g)
        eah = e * ah
        dz2 = (eah * p[o + _W3 * W] * dact(z2[0]), eah * p[o + (_W3 + 1) * W] * dact(z2[1]),
               eah * p[o + (_W3 + 2) * W] * dact(z2[2]), eah * p[o + (_W3 + 3) * W] * dact(z2[3]),
               eah * p[o + (_W3 + 4) * W] * dact(z2[4]), eah * p[o + (_W3 + 5) * W] * dact(z2[5]),
               eah * p[o + (_W3 + 6) * W] * dact(z2[6]))
        du = dy
        du = hidden_backward(p, gp, o, u, e, 0, h2[0], dz2[0], z1[0], h1, dz2, du)
        du = hidden_backward(p, gp, o, u, e, 1, h2[1], dz2[1], z1[1], h1, dz2, du)
        du = hidden_backward(p, gp, o, u, e, 2, h2[2], dz2[2], z1[2], h1, dz2, du)
        du = hidden_backward(p, gp, o, u, e, 3, h2[3], dz2[3], z1[3], h1, dz2, du)
        du = hidden_backward(p, gp, o, u, e, 4, h2[4], dz2[4], z1[4], h1, dz2, du)
        du = hidden_backward(p, gp, o, u, e, 5, h2[5], dz2[5], z1[5], h1, dz2, du)
        du = hidden_backward(p, gp, o, u, e, 6, h2[6], dz2[6], z1[6], h1, dz2, du)
        return du

    @njit(cache=True, error_model="numpy")
    def forward_tile(p, xb, rows, yb):
        wide_vectors()
        for b in range(p.size // (RECORD * W)):
            o = nonneg(b * RECORD * W)
            for n in range(rows):
                base = nonneg((b * RB + n) * W)
                for j in range(W):
                    yb[base + j] = unit(p, o + j, xb[base + j])

    @njit(cache=True, error_model="numpy")
    def backward_tile(p, xb, dyb, rows, gp):
        """dyb becomes dx in place (one array fewer for LLVM's runtime alias checks)."""
        wide_vectors()
        for b in range(p.size // (RECORD * W)):
            o = nonneg(b * RECORD * W)
            for n in range(rows):
                base = nonneg((b * RB + n) * W)
                for j in range(W):
                    dyb[base + j] = unit_backward(p, gp, o + j, xb[base + j], dyb[base + j])

    return forward_tile, backward_tile


_RELU_TILES = _specialise(_relu, _relu_grad)
_LOG_RELU_TILES = _specialise(_log_relu, _log_relu_grad)
_SIN_TILES = _specialise(sin_bounded, cos_bounded)
_SIN_LIBM_TILES = _specialise(_sin_libm, _cos_libm)
_relu_forward, _relu_backward = _RELU_TILES
_log_relu_forward, _log_relu_backward = _LOG_RELU_TILES
_sin_forward, _sin_backward = _SIN_TILES
_sin_libm_forward, _sin_libm_backward = _SIN_LIBM_TILES


def _chunks(N):
    """How many chunks (one per thread) the row tiles are dealt to."""
    return max(1, min(num_threads(), -(-N // RB)))


@njit(cache=True, parallel=True)
def _forward(x, p, kind, u_limit_bits, nchunks, y):
    # x, y [N, D]; p [nb * 112 * W] blocked
    N, D = x.shape
    nb = p.size // (RECORD * W)
    tiles = (N + RB - 1) // RB
    for c in prange(nchunks):
        xb = np.zeros(nb * RB * W, np.float32)  # [nb, RB, W]; lanes past D stay 0
        yb = np.empty(nb * RB * W, np.float32)
        for t in range(c, tiles, nchunks):
            n0 = t * RB
            rows = min(RB, N - n0)
            m = _gather(x, n0, rows, xb)
            if kind == RELU:
                _relu_forward(p, xb, rows, yb)
            elif kind == LOG_RELU:
                _log_relu_forward(p, xb, rows, yb)
            elif m < u_limit_bits:
                _sin_forward(p, xb, rows, yb)
            else:
                _sin_libm_forward(p, xb, rows, yb)
            _scatter(yb, n0, rows, y)


@njit(cache=True, parallel=True)
def _backward(x, dy, p, kind, u_limit_bits, nchunks, dx, gp):
    # x, dy, dx [N, D]; p [nb * 112 * W]; gp [nchunks, nb * 112 * W] zeroed
    N, D = x.shape
    nb = p.size // (RECORD * W)
    tiles = (N + RB - 1) // RB
    for c in prange(nchunks):
        xb = np.zeros(nb * RB * W, np.float32)
        dyb = np.zeros(nb * RB * W, np.float32)  # dy in, dx out; lanes past D stay 0
        g = gp[c]
        for t in range(c, tiles, nchunks):
            n0 = t * RB
            rows = min(RB, N - n0)
            m = _gather(x, n0, rows, xb)
            _gather(dy, n0, rows, dyb)
            if kind == RELU:
                _relu_backward(p, xb, dyb, rows, g)
            elif kind == LOG_RELU:
                _log_relu_backward(p, xb, dyb, rows, g)
            elif m < u_limit_bits:
                _sin_backward(p, xb, dyb, rows, g)
            else:
                _sin_libm_backward(p, xb, dyb, rows, g)
            _scatter(dyb, n0, rows, dx)


def _u_limit_bits(params: torch.Tensor, kind: int) -> int:
    """The bits of the largest |x| for which every sin argument stays below TRIG_LIMIT / 2
    (0: none does, the libm path everywhere); only sin needs it."""
    if kind != SIN:
        return 0
    p = params.detach().double()
    half = float(TRIG_LIMIT) / 2
    z2 = (p[:, LAYOUT["W2"]].abs().view(-1, 7, 7).sum(-1) + p[:, LAYOUT["b2"]].abs()).max().item()
    w1, b1 = p[:, LAYOUT["w1"]].abs().max().item(), p[:, LAYOUT["b1"]].abs().max().item()
    if not (z2 < half and b1 < half and w1 < math.inf):
        return 0
    u_max = (half - b1) / w1 if w1 > 0 else math.inf
    return int(np.array(min(u_max, 3.4e38), dtype=np.float32).view(np.int32))


class _MicroMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, activation):
        D = x.shape[-1]
        kind = KIND[activation]
        x2 = as_array(x.reshape(-1, D))  # [N, D]
        p = packed.blocked(params.detach().contiguous(), W)  # [nb, 112, W]
        limit = _u_limit_bits(params, kind)
        y = prefer_huge_pages(new_output(x.shape, x.dtype, x.device))
        _forward(x2, p.view(-1).numpy(), kind, limit, _chunks(x2.shape[0]), y.view(-1, D).numpy())
        ctx.save_for_backward(x, params)
        ctx.kind, ctx.limit = kind, limit
        return y

    @staticmethod
    def backward(ctx, dy):
        x, params = ctx.saved_tensors
        D = x.shape[-1]
        x2 = as_array(x.reshape(-1, D))
        dy2 = as_array(dy.reshape(-1, D))
        p = packed.blocked(params.detach().contiguous(), W)
        nchunks = _chunks(x2.shape[0])
        gp = np.zeros((nchunks, p.numel()), np.float32)
        dx = prefer_huge_pages(torch.empty(x.shape, dtype=x.dtype))
        _backward(x2, dy2, p.view(-1).numpy(), ctx.kind, ctx.limit, nchunks, dx.view(-1, D).numpy(), gp)
        dparams = packed.unblocked(torch.from_numpy(gp.sum(0)).view(p.shape), D)
        return dx, dparams, None


@implements("micro_mlp", dtypes=(torch.float32,))
def micro_mlp(x, params, activation="relu"):
    return apply(_MicroMLP, x, params, activation)
