"""bench.ops.prepare and bench.ops.peers: the closures each mode times, the reasons given for
pairs that cannot run, and the peer adapters' math (real kernels where installed,
faithful stand-ins for the CUDA-only libraries)."""

import importlib.util

import pytest
import torch

import backends
from backends.check import check_pair, differentiable_leaves, flatten
from bench.ops import peers
from bench.ops.candidates import Unavailable, implementation, names, of_op, why_unavailable
from bench.ops.prepare import prepare

SCAN = dict(B=2, T=40, D=6)


def _reference_grads(op, case, seed=0):
    """Gradients of the contract's reference for the cotangents prepare uses."""
    from bench.ops.prepare import COTANGENT_SEED, _cotangents, _graph_outputs

    spec = backends.OPS[op]
    inputs = spec.make_inputs(case, torch.float32, "cpu", seed)
    leaves = differentiable_leaves(spec, inputs)
    for t in leaves.values():
        t.requires_grad_(True)
    outs = _graph_outputs(spec, backends.get(op, "torch")(**inputs))
    grads = torch.autograd.grad(outs, list(leaves.values()), _cotangents(outs, seed + COTANGENT_SEED))
    return dict(zip(leaves, grads))


@pytest.mark.parametrize("mode", ["forward", "backward", "forward_backward"])
def test_each_mode_runs_and_leaves_gradients(mode):
    p = prepare("parallel_scan", "torch", SCAN, torch.float32, "cpu", mode)
    assert p.compile_seconds >= 0.0 and p.first_call_seconds >= p.compile_seconds
    out = p.fn()
    leaves = differentiable_leaves(backends.OPS["parallel_scan"], p.inputs)
    if mode == "forward":
        assert out.shape == (2, 40, 6) and not out.requires_grad
        assert all(t.grad is None for t in leaves.values())
        return
    want = _reference_grads("parallel_scan", SCAN)
    for _ in range(2):  # a second call rewrites the gradients, it does not add to them
        p.fn()
        for name, t in leaves.items():
            torch.testing.assert_close(t.grad, want[name])


def test_backward_mode_replays_only_the_backward():
    """The backward closure must not run the op's forward again."""
    calls = []
    raw = backends.get("stack_step", "torch").fn

    class Counting(torch.autograd.Function):
        @staticmethod
        def forward(ctx, values):
            calls.append("forward")
            return values * 2.0

        @staticmethod
        def backward(ctx, grad):
            calls.append("backward")
            return grad * 2.0

    def counted(values, mass, actions, push_value):
        return raw(Counting.apply(values), mass, actions, push_value)

    spec = backends.OPS["stack_step"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(peers.PEERS, "counting", peers.Peer("counting", ops=("stack_step",), probe=lambda: None,
                                                        adapter=lambda op: counted, devices=("cpu",)))
        p = prepare("stack_step", "counting", spec.test_cases[1], torch.float32, "cpu", "backward")
        calls.clear()
        p.fn()
        p.fn()
    assert calls == ["backward", "backward"]


def test_unavailable_pairs_raise_with_reason():
    with pytest.raises(Unavailable, match="unknown implementation 'nope'"):
        prepare("parallel_scan", "nope", SCAN)
    with pytest.raises(Unavailable, match="sized for cuda only"):
        prepare("parallel_scan", "torch", dict(SCAN, only_on="cuda"))
    with pytest.raises(Unavailable, match="takes float32"):
        prepare("parallel_scan", "mingru", SCAN, dtype=torch.float64)
    assert "no adapter" in why_unavailable("micro_mlp", "fla", "cpu")


def test_peers_say_why_a_case_does_not_fit():
    assert "N = 1" in peers.PEERS["fla"].fits("banked_attention", dict(B=1, T=8, H=1, N=4, Dk=4, Dv=4))
    assert peers.PEERS["fla"].fits("banked_attention", dict(B=1, T=8, H=1, N=1, Dk=4, Dv=4)) is None
    assert "bound" in peers.PEERS["fla"].fits("gated_update", dict(B=1, T=8, D=4, bound=1.0))
    assert "power of two" in peers.PEERS["accelerated_scan"].fits("parallel_scan", dict(B=1, T=100, D=4))
    assert "bound" in peers.PEERS["mingru"].fits("gated_update", dict(B=1, T=8, D=4, bound=2.0))


def test_elman_scan_peers_say_which_cases_they_take():
    rnn, compiled = peers.PEERS["torch_rnn"], peers.PEERS["torch_compile"]
    rung0 = dict(B=1, T=8, D=4, gate=False)
    assert rnn.fits("elman_scan", rung0) is None
    assert "delta gate" in rnn.fits("elman_scan", dict(B=1, T=8, D=4))  # the contract's cases are gated by default
    assert "log_space=True" in rnn.fits("elman_scan", dict(rung0, log_space=True))
    limit, log_limit = peers.COMPILE_MAX_T["elman_scan"], peers.COMPILE_MAX_T["elman_scan/log_space"]
    assert compiled.fits("elman_scan", dict(rung0, T=limit)) is None
    reason = compiled.fits("elman_scan", dict(rung0, T=limit + 1))
    assert "unrolls" in reason and f"T={limit + 1}" in reason
    assert log_limit < limit and compiled.fits("elman_scan", dict(rung0, T=log_limit, log_space=True)) is None
    assert "log_space" in compiled.fits("elman_scan", dict(rung0, T=log_limit + 1, log_space=True))
    assert compiled.fits("parallel_scan", dict(B=1, T=10 * limit, D=4)) is None  # a chunked scan: no loop over t
    assert "torch_rnn" in of_op("elman_scan") and "torch_rnn" not in of_op("parallel_scan")


@pytest.mark.parametrize("h0", [True, False])
def test_torch_rnn_is_the_rung0_elman_scan(h0):
    """torch.rnn_tanh with W_ih = I passes elman_scan's gate (forward and every gradient);
    the forms it has no kernel for are refused."""
    case = dict(B=2, T=9, D=5, gate=False, h0=h0)
    fn = implementation("elman_scan", "torch_rnn")
    r = check_pair("elman_scan", "torch_rnn", case, torch.float32, "cpu", fn=fn)
    assert r.ok, r.problems
    inputs = backends.OPS["elman_scan"].make_inputs(dict(case, gate=True), torch.float32, "cpu", 0)
    with pytest.raises(ValueError, match=r"elman_scan\[torch_rnn\].*gate=None"):
        fn(**inputs)


@pytest.mark.parametrize("name", ["accelerated_scan", "fla"])
def test_cuda_peers_report_their_reason_here(name):
    if peers.PEERS[name].probe() is None:
        pytest.skip("installed, with a GPU: nothing to refuse")
    op = peers.PEERS[name].ops[0]
    reason = why_unavailable(op, name, "cpu")
    assert reason is not None and name in reason
    with pytest.raises(Unavailable, match=name):
        implementation(op, name)


def test_candidates_come_from_the_registry():
    have = of_op("parallel_scan")
    assert have[0] == "torch" and "torch_compile" in have
    assert set(have) <= set(names())
    assert have.index("torch_compile") > max(have.index(b) for b in have if b in backends.BACKENDS)


def test_torch_compile_passes_the_gate_and_records_compile_time():
    case = backends.OPS["stack_step"].test_cases[1]
    fn = implementation("stack_step", "torch_compile")
    r = check_pair("stack_step", "torch_compile", case, torch.float32, "cpu", fn=fn)
    assert r.ok, r.problems
    p = prepare("stack_step", "torch_compile", case, torch.float32, "cpu", "forward")
    assert p.compile_seconds > 0.0  # its own graph: the gate's compile is not inherited
    torch.testing.assert_close(flatten(p.fn()), flatten(backends.get("stack_step", "torch")(**p.inputs)))


# ---------------------------------------------------------------------------
# Adapter math. The CUDA libraries cannot run here, so their kernels are replaced by
# sequential stand-ins with the libraries' documented semantics and layouts; the glue
# (layouts, h0 folding, the z column, log decays) then meets the contract's gate.
# ---------------------------------------------------------------------------


def _warp_scan(gates, tokens):  # accelerated_scan.warp.scan: [B, C, T], x_t = g_t x_{t-1} + t_t
    assert gates.is_contiguous() and tokens.is_contiguous()
    out, h = [], torch.zeros_like(tokens[..., 0])
    for t in range(gates.shape[-1]):
        h = gates[..., t] * h + tokens[..., t]
        out.append(h)
    return torch.stack(out, dim=-1)


def _hgrn(x, g, initial_state=None, output_final_state=False):  # fla: h_t = exp(g_t) h_{t-1} + x_t, [B, T, D]
    h = torch.zeros_like(x[:, 0]) if initial_state is None else initial_state
    out = []
    for t in range(x.shape[1]):
        h = g[:, t].exp() * h + x[:, t]
        out.append(h)
    return torch.stack(out, dim=1), (h if output_final_state else None)


def _simple_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    # fla: S_t = exp(g_t) S_{t-1} + k_t v_t^T, o_t = scale q_t S_t; q, k [B, T, H, K], g [B, T, H]
    B, T, H, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state
    out = []
    for t in range(T):
        S = g[:, t].exp()[..., None, None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        out.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    return torch.stack(out, dim=1), (S if output_final_state else None)


STAND_INS = {
    ("accelerated_scan.warp", "scan"): _warp_scan,
    ("fla.ops.hgrn", "fused_recurrent_hgrn"): _hgrn,
    ("fla.ops.simple_gla", "chunk_simple_gla"): _simple_gla,
}


@pytest.mark.parametrize("peer, op, case", [
    ("accelerated_scan", "parallel_scan", dict(B=2, T=32, D=3)),
    ("accelerated_scan", "parallel_scan", dict(B=1, T=64, D=2, h0=False)),
    ("fla", "gated_update", dict(B=2, T=17, D=5)),
    ("fla", "banked_attention", dict(B=2, T=9, H=2, N=1, Dk=4, Dv=3)),
    ("fla", "banked_attention", dict(B=1, T=6, H=2, N=1, Dk=3, Dv=5, state=True)),
])
def test_cuda_peer_adapters_meet_the_contract(monkeypatch, peer, op, case):
    monkeypatch.setattr(peers, "load", lambda module, attr: STAND_INS[(module, attr)])
    assert peers.PEERS[peer].fits(op, case) is None
    r = check_pair(op, peer, case, torch.float32, "cpu", fn=peers.PEERS[peer].adapter(op))
    assert r.ok, r.problems


@pytest.mark.skipif(importlib.util.find_spec("minGRU_pytorch") is None, reason="mingru-pytorch is not installed")
@pytest.mark.parametrize("op, case", [("parallel_scan", dict(B=2, T=33, D=4)),
                                      ("gated_update", dict(B=2, T=17, D=5, h0=False))])
def test_mingru_adapter_passes_the_gate(op, case):
    r = check_pair(op, "mingru", case, torch.float32, "cpu", fn=implementation(op, "mingru"))
    assert r.ok, r.problems


def test_mingru_refuses_gates_it_cannot_take_the_log_of():
    if importlib.util.find_spec("minGRU_pytorch") is None:
        pytest.skip("mingru-pytorch is not installed")
    inputs = backends.OPS["parallel_scan"].make_inputs(SCAN)
    inputs["a"][0, 0, 0] = -0.5
    with pytest.raises(ValueError, match="gates > 0"):
        implementation("parallel_scan", "mingru")(**inputs)
