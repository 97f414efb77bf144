"""Compatibility with the GPU machines' stack (triton 3.6, torch 2.11), checked here with a
newer triton by reading the kernels and by the interpreter under the GPU's rules.

- Names: every ``triton.language`` name and ``triton`` top-level name the kernels use is in
  triton 3.6 (lists copied from triton 3.6.0's ``__all__``); newer names (3.9 added
  squeeze, unsqueeze, to_tensor, atomic_load/store/poll, expect_zero) fail here.
- Keywords: every keyword a kernel passes to a triton function is a parameter of that
  function in triton 3.6 (signatures copied from 3.6.0's triton/language and runtime).
- Dot sizes: the interpreter accepts any tl.dot shape, a CUDA GPU only K >= 16 (8-bit: 32)
  per triton 3.6's NVIDIA backend; the dot-using ops run under that rule here.

torch: every torch name the repository uses (about 170 attribute chains, audited when this
file was written) is older than torch 2.11, and the version-dependent ones (dynamo's
recompile_limit, functorch's donated_buffer) are reached through hasattr; no test here.
"""

import ast
from pathlib import Path

import pytest
import torch

import backends
from backends.check import check_pair

TRITON_DIR = Path(__file__).resolve().parent.parent / "backends" / "triton"

TRITON_36_LANGUAGE = set("""
PropagateNan TRITON_MAX_TENSOR_NUMEL abs add advance arange argmax argmin associative_scan assume atomic_add
atomic_and atomic_cas atomic_max atomic_min atomic_or atomic_xchg atomic_xor bfloat16 bitonic_merge block_type
broadcast broadcast_to cast cat cdiv ceil clamp condition const constexpr constexpr_type cos cumprod cumsum
debug_barrier device_assert device_print div_rn dot dot_scaled dtype erf exp exp2 expand_dims extra fdiv flip
float16 float32 float64 float8e4b15 float8e4b8 float8e4nv float8e5 float8e5b16 floor fma full gather histogram
inline_asm_elementwise int1 int16 int32 int64 int8 interleave join load load_tensor_descriptor log log2
make_block_ptr make_tensor_descriptor map_elementwise math max max_constancy max_contiguous maximum min minimum
mul multiple_of num_programs pair_uniform_to_normal permute philox philox_impl pi32_t pointer_type program_id
rand rand4x randint randint4x randn randn4x range ravel reduce reduce_or reshape rsqrt sigmoid sin slice softmax
sort split sqrt sqrt_rn static_assert static_print static_range store store_tensor_descriptor sub sum swizzle2d
target_info tensor tensor_descriptor topk trans tuple uint16 uint32 uint64 uint8 uint_to_uniform_float umulhi
view void where xor_sum zeros zeros_like
""".split())

TRITON_36_TOP = set("""
AsyncCompileMode CompilationError Config FutureKernel InterpreterError JITFunction KernelInterface MockTensor
OutOfResources TensorWrapper TritonError autotune cdiv compile constexpr_function heuristics jit language
must_use_result next_power_of_2 reinterpret runtime set_allocator testing tools
""".split())

# Parameters in triton 3.6.0 of the functions the kernels call with keywords. A function
# missing here fails the keyword test: copy its 3.6 signature in after checking it.
TRITON_36_PARAMS = {
    "dot": "input other acc input_precision allow_tf32 max_num_imprecise_acc out_dtype",
    "sum": "input axis keep_dims dtype",
    "max": "input axis return_indices return_indices_tie_break_left keep_dims",
    "min": "input axis return_indices return_indices_tie_break_left keep_dims",
    "cumsum": "input axis reverse dtype",
    "associative_scan": "input axis combine_fn reverse",
    "load": "pointer mask other boundary_check padding_option cache_modifier eviction_policy volatile",
    "store": "pointer value mask boundary_check cache_modifier eviction_policy",
    "reshape": "input shape can_reorder",
    "full": "shape value dtype",
    "zeros": "shape dtype",
    "maximum": "x y propagate_nan",
    "minimum": "x y propagate_nan",
    "autotune": "configs key prune_configs_by reset_to_zero restore_value pre_hook post_hook warmup rep "
                "use_cuda_graph do_bench cache_results",
    "Config": "kwargs num_warps num_stages num_ctas maxnreg pre_hook ir_override",
}


def _triton_uses():
    """(file, line, module, name, keywords) for every use of triton.language (tl) or
    triton's top level in the Triton backend."""
    uses = []
    for path in sorted(TRITON_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = {}  # local name -> "triton" or "triton.language"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in ("triton", "triton.language"):
                        aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module in ("triton", "triton.language"):
                for a in node.names:
                    uses.append((path.name, node.lineno, node.module, a.name, ()))
        keywords = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                keywords[id(node.func)] = tuple(k.arg for k in node.keywords if k.arg)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in aliases:
                module = aliases[base.id]
            elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and \
                    aliases.get(base.value.id) == "triton" and base.attr == "language":
                module = "triton.language"  # triton.language.X written out
            else:
                continue
            uses.append((path.name, node.lineno, module, node.attr, keywords.get(id(node), ())))
    return uses


def test_the_scan_sees_the_kernels():
    names = {(m, n) for _, _, m, n, _ in _triton_uses()}
    assert {("triton.language", "dot"), ("triton.language", "associative_scan"), ("triton", "autotune")} <= names


def test_kernels_use_only_names_triton_36_has():
    bad = [f"{f}:{line}: {m}.{n}" for f, line, m, n, _ in _triton_uses()
           if n not in (TRITON_36_LANGUAGE if m == "triton.language" else TRITON_36_TOP)
           and not (m == "triton" and n in ("language", "__version__"))]
    assert not bad, "not in triton 3.6 (the GPU machines'): " + ", ".join(bad)


def test_kernels_pass_only_keywords_triton_36_takes():
    bad = []
    for f, line, m, n, kws in _triton_uses():
        if not kws:
            continue
        known = TRITON_36_PARAMS.get(n)
        if known is None:
            bad.append(f"{f}:{line}: {m}.{n}({', '.join(kws)}=...): add its triton 3.6 signature to TRITON_36_PARAMS")
        else:
            bad += [f"{f}:{line}: {m}.{n}({k}=...)" for k in kws if k not in known.split()]
    assert not bad, "keywords triton 3.6 does not take: " + "; ".join(bad)


def _dot_ops():
    """The ops whose Triton file calls tl.dot."""
    return sorted({f[:-3] for f, _, m, n, _ in _triton_uses() if m == "triton.language" and n == "dot"})


def _nvidia_min_dot_size(lhs_type, rhs_type):
    """triton 3.6 backends/nvidia/compiler.py min_dot_size: (M, N, K) lower bounds."""
    return (1, 1, 32) if lhs_type.scalar.primitive_bitwidth == 8 else (1, 1, 16)


@pytest.mark.parametrize("op", _dot_ops())
def test_dots_meet_the_gpu_minimum_sizes(monkeypatch, op):
    """Forward and gradients of every test case of the op in the interpreter, with the
    interpreter's dot-size rule (any size) replaced by the NVIDIA backend's (K >= 16)."""
    if torch.cuda.is_available():
        pytest.skip("on a GPU the compiler applies the rule itself (the matrix)")
    if backends.BACKENDS["triton"].why_unavailable() is not None:
        pytest.skip(backends.BACKENDS["triton"].why_unavailable())
    from triton.runtime import interpreter

    builder = getattr(interpreter, "interpreter_builder", None)
    if builder is None or "min_dot_size" not in getattr(builder, "codegen_fns", {}):
        pytest.skip("this triton's interpreter has no min_dot_size hook")
    monkeypatch.setitem(builder.codegen_fns, "min_dot_size", _nvidia_min_dot_size)
    for case in backends.OPS[op].test_cases:
        result = check_pair(op, "triton", case, torch.float32, "cpu")
        assert result.ok, f"{op}[triton] {case}: " + "; ".join(result.problems)


def test_numba_cuda_array_module_imports_with_the_alias_numpy_25_removed(monkeypatch):
    """numba-cuda <= 0.30.4 reads ``np.row_stack`` when its array module loads; NumPy 2.5
    has none. The module is loaded with the alias present, and NumPy is left without it."""
    import importlib
    import importlib.util

    import numpy as np

    from backends.numba_cuda import _numpy_compat

    if hasattr(np, "row_stack"):
        monkeypatch.delattr(np, "row_stack")
    seen = []

    def import_module(name):
        seen.append((name, getattr(np, "row_stack", None) is np.vstack))

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "numba_cuda" else None)
    monkeypatch.setattr(importlib, "import_module", import_module)
    _numpy_compat.load_numba_cuda_arrays()
    assert seen == [("numba.cuda.np.arrayobj", True)]
    assert not hasattr(np, "row_stack")
