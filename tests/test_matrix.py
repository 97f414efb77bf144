"""The correctness matrix: op x backend x test case x dtype, forward and every
differentiable input's gradient, against the float64 reference (backends.check)."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backends
from backends.check import check_pair
from tests.registry_params import case_params, coverage_gap_params, device_for, is_emulated, op_backend_params, require


def _explain(result) -> str:
    return f"{result.op}[{result.backend}] {result.case} {result.dtype}: " + "; ".join(result.problems)


@pytest.mark.parametrize("op, backend, case, dtype", case_params())
def test_case(request, op, backend, case, dtype):
    require(request, op, backend, dtype)
    result = check_pair(op, backend, case, dtype, device_for(backend))
    assert result.ok, _explain(result)
    if backends.IMPLS[(op, backend)].grad:
        assert result.grad_error is not None


@pytest.mark.parametrize("op, backend", coverage_gap_params())
def test_coverage_gap(op, backend):
    pytest.skip(f"backend {backend} has no backends/{backend}/{op}.py yet")


def _case_strategy(op):
    space = backends.OPS[op].case_space
    return st.fixed_dictionaries({
        k: st.integers(v.start, v.stop - 1) if isinstance(v, range) else st.sampled_from(list(v))
        for k, v in space.items()
    })


@pytest.mark.parametrize("op, backend", op_backend_params())
def test_random_shapes(request, op, backend):
    """Hypothesis-drawn cases: T = 1, sizes that are not multiples of a block, options."""
    require(request, op, backend, torch.float32)
    examples = 4 if is_emulated(backend) else 12

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=_case_strategy(op), seed=st.integers(0, 2**16))
    def run(case, seed):
        result = check_pair(op, backend, case, torch.float32, device_for(backend), seed=seed)
        assert result.ok, _explain(result)

    run()
