"""The vectorisable float32 special functions of the numba_cpu backend against libm
(NumPy in float64): error in ulp of the float32 result over a sample of every float32 bit
pattern (both signs, denormals, the saturation regions), then the special values."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")
special = pytest.importorskip("backends.numba_cpu.special")
scipy_special = pytest.importorskip("scipy.special")

# name -> (float64 reference, max ulp allowed, odd function: keeps the sign of zero)
FUNCTIONS = {
    "fexp": (np.exp, 1.0, False),
    "flog": (np.log, 1.0, False),
    "flog1p": (np.log1p, 2.0, True),
    "ftanh": (np.tanh, 2.0, True),
    "fsigmoid": (scipy_special.expit, 3.0, False),
    "fsin": (np.sin, 4.0, True),
    "fcos": (np.cos, 4.0, False),
}
TRIG = ("fsin", "fcos")
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38,
                     88.72283, 88.72284, -87.33654, -103.97, -104.0, -1.0, -0.99999994, 1e-30, -1e-30,
                     9.0, -9.0, 0.625, -0.625, np.pi / 2, 1e4, -1e4], dtype=np.float32)


@numba.njit
def _apply(f, x, y):
    for i in range(x.size):
        y[i] = f(x[i])


def _inputs(stride=4099):
    """Every stride-th float32 bit pattern (about a million values), then SPECIALS."""
    bits = np.arange(0, 2 ** 32, stride, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(np.float32), SPECIALS])


def _evaluate(name, x):
    y = np.empty_like(x)
    _apply(getattr(special, name), x, y)
    with np.errstate(all="ignore"):
        ref = FUNCTIONS[name][0](x.astype(np.float64))
    return y, ref


def _ulp_error(y, ref):
    """|y - ref| in units of the float32 spacing at ref (denormal spacing below 2**-126)."""
    spacing = np.spacing(np.maximum(np.abs(ref), np.finfo(np.float32).tiny).astype(np.float32))
    return np.abs(y.astype(np.float64) - ref) / spacing.astype(np.float64)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_accuracy_against_libm(name):
    x = _inputs()
    y, ref = _evaluate(name, x)
    with np.errstate(over="ignore"):
        ref32 = ref.astype(np.float32)  # exp past 88.7: inf in float32
    domain = np.abs(x) < special.TRIG_LIMIT if name in TRIG else np.ones(x.shape, bool)
    # NaN and Inf exactly where the float32 of the libm result has them (overflow included)
    special_ref = ~np.isfinite(ref32) & domain
    np.testing.assert_array_equal(np.isnan(y[special_ref]), np.isnan(ref32[special_ref]))
    np.testing.assert_array_equal(y[special_ref & ~np.isnan(ref32)], ref32[special_ref & ~np.isnan(ref32)])
    finite = np.isfinite(ref32) & domain
    assert np.all(np.isfinite(y[finite])), x[finite][~np.isfinite(y[finite])][:5]
    err = _ulp_error(y[finite], ref[finite])
    worst = int(np.argmax(err))
    assert err[worst] <= FUNCTIONS[name][1], (
        f"{name}: {err[worst]:.2f} ulp at x={x[finite][worst]!r}: got {y[finite][worst]!r}, libm {ref[finite][worst]!r}")


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_signed_zero_and_nan(name):
    x = np.array([0.0, -0.0, np.nan, -np.nan], dtype=np.float32)
    y, ref = _evaluate(name, x)
    assert np.isnan(y[2]) and np.isnan(y[3])
    if np.all(np.isfinite(ref[:2])):
        assert np.all(_ulp_error(y[:2], ref[:2]) <= FUNCTIONS[name][1]), (name, y[:2])
    else:
        np.testing.assert_array_equal(y[:2], ref[:2].astype(np.float32))
    if FUNCTIONS[name][2]:
        assert np.signbit(y[1]) and not np.signbit(y[0])


def test_saturation_values():
    x = np.array([np.inf, -np.inf, 200.0, -200.0], dtype=np.float32)
    expected = {
        "fexp": [np.inf, 0.0, np.inf, 0.0],
        "ftanh": [1.0, -1.0, 1.0, -1.0],
        "fsigmoid": [1.0, 0.0, 1.0, 0.0],
        "flog": [np.inf, np.nan, np.log(np.float32(200.0)), np.nan],
    }
    for name, want in expected.items():
        y, _ = _evaluate(name, x)
        np.testing.assert_allclose(y, np.array(want, dtype=np.float32), rtol=1e-7, err_msg=name)
    for name in TRIG:
        y, _ = _evaluate(name, np.array([np.inf, -np.inf, special.TRIG_LIMIT, -3e38], dtype=np.float32))
        assert np.all(np.isnan(y)), (name, y)
    y, _ = _evaluate("flog1p", np.array([-1.0, -1.5, np.inf], dtype=np.float32))
    np.testing.assert_array_equal(y, np.array([-np.inf, np.nan, np.inf], dtype=np.float32))


def test_denormal_results():
    """exp and sigmoid far below zero give denormals, not a flush to zero."""
    x = np.array([-88.0, -95.0, -100.0, -103.0], dtype=np.float32)
    for name in ("fexp", "fsigmoid"):
        y, ref = _evaluate(name, x)
        assert np.all(y > 0), (name, y)
        assert np.all(_ulp_error(y, ref) <= 1.0), (name, y, ref)


def test_loops_vectorise():
    """A loop over each function compiles to vector instructions with no libm call."""
    for name in FUNCTIONS:
        f = getattr(special, name)
        _apply(f, np.zeros(4, np.float32), np.zeros(4, np.float32))
        llvm_ir = _apply.inspect_llvm(_apply.signatures[-1])
        assert "<8 x float>" in llvm_ir or "<16 x float>" in llvm_ir, name
        for libm in ("@expf", "@logf", "@log1pf", "@tanhf", "@sinf", "@cosf"):
            assert libm not in llvm_ir, (name, libm)


@numba.njit
def _apply2(f, a, b, y):
    for i in range(a.size):
        y[i] = f(a[i], b[i])


def test_tanh_sigmoid_against_libm():
    """The fused gate tanh(a) sigmoid(b) over a grid of both arguments, specials included."""
    rng = np.random.default_rng(0)
    vals = np.concatenate([3 * rng.standard_normal(150), 30 * rng.standard_normal(50), SPECIALS]).astype(np.float32)
    a, b = (v.ravel() for v in np.meshgrid(vals, vals))
    y = np.empty_like(a)
    _apply2(special.tanh_sigmoid, a, b, y)
    with np.errstate(all="ignore"):
        ref = np.tanh(a.astype(np.float64)) * scipy_special.expit(b.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    finite = np.isfinite(ref)
    err = _ulp_error(y[finite], ref[finite])
    assert err.max() <= 5.0, (err.max(), a[finite][err.argmax()], b[finite][err.argmax()])
    zeros = finite & (ref == 0)
    np.testing.assert_array_equal(np.signbit(y[zeros]), np.signbit(ref[zeros]))


def test_log1p_nonneg_against_libm():
    """The relu-domain log1p: every stride-th non-negative float32, inf and NaN."""
    x = _inputs()
    x = np.concatenate([x[(x >= 0) | np.isnan(x)], np.array([np.inf, np.nan], np.float32)])
    y = np.empty_like(x)
    _apply(special.log1p_nonneg, x, y)
    with np.errstate(invalid="ignore"):  # the bit patterns include signalling NaNs
        ref = np.log1p(x.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert y[-2] == np.inf
    finite = np.isfinite(ref)
    assert _ulp_error(y[finite], ref[finite]).max() <= 2.0
