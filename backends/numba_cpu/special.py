"""Vectorisable float32 special functions for Numba loops.

The PyPI llvmlite has no SVML, so ``math.exp``/``tanh``/``sin``/``log1p`` stay scalar
libm calls inside a Numba loop and stop LLVM from vectorising it. The functions here are
branch-free float32 arithmetic (selects, bit casts, ``llvm.fma``/``llvm.rint``) that LLVM
inlines and vectorises inside ``prange`` and plain loops.

    fexp, flog, flog1p, ftanh, fsigmoid, fsin, fcos     (float32 -> float32)

Every argument must be a float32 (mix in a float64 and Numba promotes the whole
expression). Callers keep their own constants float32 too (``np.float32(...)`` globals).

Accuracy against libm (tests/test_numba_cpu_special.py measures it): a few ulp over the
whole float32 range, denormals included. ``fsin``/``fcos`` reduce by pi with a
three-part Cody-Waite split and are accurate for |x| < TRIG_LIMIT (2**22); at or past it
they return NaN, and a kernel that can meet such arguments bounds them first and calls
libm's ``math.sin`` instead (a full-range vector reduction would cost more than the sine).

NaN and Inf propagate as the math says: fexp(-inf) = 0, fexp(inf) = inf, ftanh(+-inf) =
+-1, fsigmoid(-inf) = 0, flog(0) = -inf, flog(x < 0) = nan, flog1p(-1) = -inf,
fsin(+-inf) = nan, and a NaN in gives a NaN out. Signed zeros are kept where the function
is odd (ftanh, fsin, flog1p).

No fastmath flags: only ``contract`` could help, and the FMAs are written explicitly.
"""

from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from backends.numba_cpu._common import always_inline

F = np.float32
_ZERO, _HALF, _ONE, _TWO = F(0.0), F(0.5), F(1.0), F(2.0)
_INF = F(np.inf)
_NAN = F(np.nan)

# ---------------------------------------------------------------------------------------
# LLVM intrinsics on float32 scalars (LLVM widens them to vector instructions).
# ---------------------------------------------------------------------------------------

_F32 = ir.FloatType()
_I32 = ir.IntType(32)


def _float32_intrinsic(body):
    """An intrinsic on float32 scalars: ``body(builder, *args)`` emits its LLVM code."""
    nargs = body.__code__.co_argcount - 1
    sig = types.float32(*(types.float32,) * nargs)

    def codegen(context, builder, signature, args):
        return body(builder, *args)

    def typed(*args):
        return (sig, codegen) if all(a == types.float32 for a in args) else None

    typer = {1: lambda typingctx, a: typed(a),
             2: lambda typingctx, a, b: typed(a, b),
             3: lambda typingctx, a, b, c: typed(a, b, c)}[nargs]
    typer.__name__ = body.__name__
    typer.__doc__ = body.__doc__
    return intrinsic(typer)


def _llvm_call(builder, name, *args):
    fnty = ir.FunctionType(_F32, [_F32] * len(args))
    return builder.call(builder.module.declare_intrinsic(name, [_F32], fnty), args)


def _i32(value):
    return ir.Constant(_I32, value)


@_float32_intrinsic
def _fma(builder, a, b, c):
    """a * b + c with a single rounding."""
    return _llvm_call(builder, "llvm.fma", a, b, c)


@_float32_intrinsic
def _rint(builder, x):
    """Round to the nearest integer, ties to even (the default rounding mode)."""
    return _llvm_call(builder, "llvm.rint", x)


@_float32_intrinsic
def _copysign(builder, mag, sgn):
    """|mag| with the sign bit of sgn."""
    return _llvm_call(builder, "llvm.copysign", mag, sgn)


@_float32_intrinsic
def _pow2(builder, k):
    """2.0 ** k for an integer-valued float32 k in [-126, 127]: the exponent bits."""
    bits = builder.shl(builder.add(builder.fptosi(k, _I32), _i32(127)), _i32(23))
    return builder.bitcast(bits, _F32)


@_float32_intrinsic
def _exponent(builder, x):
    """The unbiased binary exponent of a positive normal x, as a float32."""
    bits = builder.bitcast(x, _I32)
    return builder.sitofp(builder.sub(builder.lshr(bits, _i32(23)), _i32(127)), _F32)


@_float32_intrinsic
def _mantissa(builder, x):
    """x with its exponent replaced by 0: the significand of a positive x, in [1, 2)."""
    bits = builder.or_(builder.and_(builder.bitcast(x, _I32), _i32(0x007FFFFF)), _i32(0x3F800000))
    return builder.bitcast(bits, _F32)


@_float32_intrinsic
def _flip_if_odd(builder, x, j):
    """-x if the integer-valued float32 j (|j| < 2**31) is odd, else x: a sign-bit xor."""
    odd = builder.shl(builder.fptosi(j, _I32), _i32(31))
    return builder.bitcast(builder.xor(builder.bitcast(x, _I32), odd), _F32)


def _kernel(fn):
    """A special function: compiled for float32, inlined into its callers (every function
    here calls always_inline: LLVM's own threshold would leave the larger ones as calls,
    and a call in a loop stops its vectorisation)."""
    return njit(types.float32(types.float32), cache=True, error_model="numpy")(fn)


# ---------------------------------------------------------------------------------------
# exp: x = n ln2 + r, |r| <= ln2 / 2; exp(r) by a degree-6 polynomial (Cephes expf);
# 2**n applied as two factors so that overflow to inf and denormal results come out right.
# ---------------------------------------------------------------------------------------

_LOG2E = F(1.44269504088896341)
_LN2_HI, _LN2_LO = F(0.693359375), F(-2.12194440e-4)
_EXP_LO, _EXP_HI = F(-104.0), F(89.0)  # exp underflows to 0 below, overflows to inf above
_EXP_P = tuple(F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


@_kernel
def fexp(x):
    always_inline()
    xc = x if x > _EXP_LO else _EXP_LO  # NaN -> _EXP_LO: the integer steps see a number
    xc = xc if xc < _EXP_HI else _EXP_HI
    n = _rint(xc * _LOG2E)
    r = _fma(-n, _LN2_HI, xc)
    r = _fma(-n, _LN2_LO, r)
    p = _fma(_EXP_P[0], r, _EXP_P[1])
    p = _fma(p, r, _EXP_P[2])
    p = _fma(p, r, _EXP_P[3])
    p = _fma(p, r, _EXP_P[4])
    p = _fma(p, r, _EXP_P[5])
    p = _fma(p, r * r, r) + _ONE
    n1 = _rint(n * _HALF)
    y = p * _pow2(n1) * _pow2(n - n1)
    return y if x == x else x


# ---------------------------------------------------------------------------------------
# log: x = m 2**e with m in [sqrt(1/2), sqrt(2)); log(m) = f - f^2/2 + f^3 P(f), f = m - 1
# (Cephes logf); e ln2 added in two parts.
# ---------------------------------------------------------------------------------------

_SQRT2 = F(1.41421356237309505)
_TINY = F(1.17549435e-38)  # smallest normal float32
_TWO23 = F(8388608.0)
_LOG_P = tuple(F(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                               -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                               2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))
_DENORMAL_SHIFT = F(23.0)
_EXP_MAX = F(126.0)


@njit(cache=True)
def _normal_log_parts(x):
    """(e, f) with x = 2**e (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1), for a finite normal
    x > 0."""
    always_inline()
    e = _exponent(x)
    m = _mantissa(x)
    big = m > _SQRT2
    m = m * _HALF if big else m
    e = e + _ONE if big else e
    return e, m - _ONE


@njit(cache=True)
def _log_parts(x):
    """_normal_log_parts for any finite x > 0 (denormals scaled up first)."""
    always_inline()
    small = x < _TINY
    e, f = _normal_log_parts(x * _TWO23 if small else x)
    return (e - _DENORMAL_SHIFT if small else e), f


@njit(cache=True)
def _log1p_poly(e, f):
    """e ln2 + log(1 + f) for |f| < 0.42 (no special values)."""
    always_inline()
    z = f * f
    p = _LOG_P[0]
    for c in _LOG_P[1:]:
        p = _fma(p, f, c)
    y = p * f * z
    y = _fma(e, _LN2_LO, y)
    y = _fma(-_HALF, z, y)
    return _fma(e, _LN2_HI, f + y)


@_kernel
def flog(x):
    always_inline()
    xc = x if x > _ZERO else _ONE  # keep the bit tricks on positive numbers
    xc = xc if xc < _INF else _ONE
    e, f = _log_parts(xc)
    y = _log1p_poly(e, f)
    y = y if x < _INF else x  # inf, nan
    y = y if x > _ZERO else (-_INF if x == _ZERO else _NAN)
    return y if x == x else x


@njit(cache=True)
def _log1p_at(x, u, e, f):
    """log(1 + x) from u = fl(1 + x) = 2**e (1 + f): log(u) + (x - (u - 1)) / u. The
    quotient puts back what rounding 1 + x lost, so small x keep their relative accuracy;
    it is below half an ulp of u, so 1 / u is taken as 2**-e (1 - f) (within 12%): no
    division. (2**-e is held at 2**-126 for e = 127, 128, where the lost part is 0.)"""
    always_inline()
    lost = (x - (u - _ONE)) * _pow2(-e if e < _EXP_MAX else -_EXP_MAX)
    return _log1p_poly(e, f) + _fma(-lost, f, lost)


@_kernel
def flog1p(x):
    always_inline()
    u = x + _ONE
    ok = (u > _ZERO) & (u < _INF)
    uc = u if ok else _ONE
    e, f = _log_parts(uc)
    y = _log1p_at(x, uc, e, f)
    y = y if ok else (x if u == _INF else (-_INF if u == _ZERO else _NAN))
    y = y if x != _ZERO else x  # keeps -0
    return y if x == x else x


@_kernel
def log1p_nonneg(x):
    """flog1p for x >= 0, +inf or NaN (what relu gives): 1 + x >= 1 needs neither the
    denormal nor the domain selects; inf and NaN come out as themselves."""
    always_inline()
    u = x + _ONE
    uc = u if u < _INF else _ONE
    e, f = _normal_log_parts(uc)
    y = _log1p_at(x, uc, e, f)
    return y if u < _INF else u


# ---------------------------------------------------------------------------------------
# tanh and sigmoid from exp of a non-positive argument (no overflow, no cancellation).
# ---------------------------------------------------------------------------------------

_TANH_SMALL = F(0.625)
_TANH_P = tuple(F(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                1.33314422036e-1, -3.33332819422e-1))


@njit(cache=True)
def _tanh_small(x):
    """tanh(x) for |x| < 0.625: x + x^3 P(x^2) (Cephes tanhf)."""
    always_inline()
    z = x * x
    p = _TANH_P[0]
    for c in _TANH_P[1:]:
        p = _fma(p, z, c)
    return _fma(p * z, x, x)


@_kernel
def ftanh(x):
    """|x| < 0.625: the odd polynomial; else (1 - e) / (1 + e), e = exp(-2|x|)."""
    always_inline()
    ax = abs(x)
    small = _tanh_small(x)
    small = small if x != _ZERO else x  # keeps -0
    e = fexp(-_TWO * ax)
    large = _copysign((_ONE - e) / (_ONE + e), x)
    return small if ax < _TANH_SMALL else large


@_kernel
def fsigmoid(x):
    """1 / (1 + e) for x >= 0, e / (1 + e) below, with e = exp(-|x|) (denormals kept)."""
    always_inline()
    e = fexp(-abs(x))
    s = _ONE / (_ONE + e)
    return s if x >= _ZERO else e * s


@njit(types.float32(types.float32, types.float32), cache=True, error_model="numpy")
def tanh_sigmoid(a, b):
    """tanh(a) sigmoid(b) with one division for both quotients:
    sign(a) (1 - ea) sb / ((1 + ea)(1 + eb)), ea = exp(-2|a|), eb = exp(-|b|), sb = 1 for
    b >= 0 and eb below (the polynomial stands in for the tanh quotient where |a| < 0.625).
    Within a few ulp of the product of ftanh and fsigmoid; NaN and Inf as theirs."""
    always_inline()
    aa = abs(a)
    ea = fexp(-_TWO * aa)
    eb = fexp(-abs(b))
    small = aa < _TANH_SMALL
    num = _tanh_small(a) if small else _copysign(_ONE - ea, a)
    num = num if b >= _ZERO else num * eb
    den = (_ONE if small else _ONE + ea) * (_ONE + eb)
    y = num / den
    y = y if a != _ZERO else a * (_ONE if b == b else b)  # keeps -0; nan b: nan
    return y if b == b else b


# ---------------------------------------------------------------------------------------
# sin and cos: x = j pi + r, |r| <= pi / 2, sin(x) = (-1)^j sin(r), sin(r) by an odd
# degree-11 polynomial (relative error 2.4e-11 on [-pi/2, pi/2], fitted for this module).
# pi = PI_A + PI_B + PI_C, each part a float32 (72 bits in all). With FMA the products are
# exact and x - j PI_A is exact while |j| < 2**23; the quotient j = rint(x / pi) is the
# nearest integer (|r| <= pi / 2 + 1 / 16) while |x| < TRIG_LIMIT. Past it the result is NaN: the kernels that call fsin/fcos
# bound their arguments and take math.sin/math.cos (libm, scalar) where the bound fails.
# ---------------------------------------------------------------------------------------

_PI = Fraction("3.14159265358979323846264338327950288419716939937510582097494459")
_PI_A = F(float(_PI))
_PI_B = F(float(_PI - Fraction(float(_PI_A))))
_PI_C = F(float(_PI - Fraction(float(_PI_A)) - Fraction(float(_PI_B))))
_INV_PI = F(float(1 / _PI))
_SIN_P = tuple(F(c) for c in (-2.3888906852675973e-08, 2.752538421191275e-06, -1.984086848096922e-04,
                               8.333330973982811e-03, -1.666666716337204e-01))
TRIG_LIMIT = F(2.0 ** 22)  # |x| below: accurate; at or above: NaN (past it rint(x / pi) may miss by one)


@njit(cache=True)
def _sin_poly(r):
    """sin(r) for |r| <= pi / 2."""
    always_inline()
    z = r * r
    p = _SIN_P[0]
    for c in _SIN_P[1:]:
        p = _fma(p, z, c)
    return _fma(p * z, r, r)


@njit(cache=True)
def _reduce_pi(x, j):
    """x - j pi for an integer-valued (or half-integer) j, |j| < 2**23."""
    always_inline()
    r = _fma(-j, _PI_A, x)
    r = _fma(-j, _PI_B, r)
    return _fma(-j, _PI_C, r)


@_kernel
def sin_bounded(x):
    """sin(x) for a finite |x| < TRIG_LIMIT that the caller guarantees (no selects for
    special values: the lean form for kernels that bound their arguments)."""
    always_inline()
    j = _rint(x * _INV_PI)
    return _flip_if_odd(_sin_poly(_reduce_pi(x, j)), j)


@_kernel
def cos_bounded(x):
    """cos(x) = -(-1)^j sin(x - (j + 1/2) pi), j = rint(x / pi - 1/2), for a finite
    |x| < TRIG_LIMIT that the caller guarantees."""
    always_inline()
    j = _rint(_fma(x, _INV_PI, -_HALF))
    return _flip_if_odd(-_sin_poly(_reduce_pi(x, j + _HALF)), j)


@_kernel
def fsin(x):
    always_inline()
    inside = abs(x) < TRIG_LIMIT
    y = sin_bounded(x if inside else _ZERO)
    y = y if x != _ZERO else x  # keeps -0
    return y if inside else _NAN


@_kernel
def fcos(x):
    always_inline()
    inside = abs(x) < TRIG_LIMIT
    y = cos_bounded(x if inside else _ZERO)
    return y if inside else _NAN


@intrinsic
def magnitude_bits(typingctx, x):
    """The bits of |x| as an int32: ordered like |x| for numbers, above every finite
    value for inf and NaN (an integer max over them vectorises where a float max
    with NaN semantics does not)."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.and_(builder.bitcast(args[0], _I32), _i32(0x7FFFFFFF))

    return types.int32(types.float32), codegen


__all__ = ["fexp", "flog", "flog1p", "ftanh", "fsigmoid", "fsin", "fcos", "sin_bounded", "cos_bounded",
           "tanh_sigmoid", "log1p_nonneg", "magnitude_bits", "TRIG_LIMIT"]
