"""The compiled step of the loop-bound families (DESIGN 9, issue 20): ``compile_step``
gives the eager model's hidden states and gradients, and compiles once for two lengths.

The step is compiled with the "aot_eager" backend behind a counting wrapper: it traces
the same forward and backward graphs inductor would compile (AOTAutograd's joint graph)
without generating C++, seconds instead of minutes on this CPU. Tiny configs."""

import pytest
import torch

import backends
import models
from bench.modelbench.bench import compiled_loss
from torch._dynamo.backends.registry import lookup_backend

# (family, overrides): a tiny config of every loop-bound family and step kind
LOOP_BOUND = (
    ("stackformer", dict(d_model=16, d_core=8, n_heads=2, n_banks=2, n_layers=1, stack_depth=3, max_steps=3)),
    ("nsm", dict(variant="simple", d_model=16, n_layers=1, n_states=4, chunk=4)),
    ("elman", dict(d_model=8, n_layers=1, rung=1, fused=False)),
    ("elman", dict(d_model=8, n_layers=1, rung=2, group_size=4)),  # fused: compiled, the per-step path
    ("elman", dict(d_model=8, n_layers=2, rung=3, group_size=4)),
)


class CountingBackend:
    """aot_eager, counting the graphs dynamo hands it (one per compile)."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return lookup_backend("aot_eager")(gm, example_inputs)


def _pair(family, overrides):
    cfg = models.config(family, vocab_size=32, **overrides)
    ops = backends.resolve("torch", "cpu")
    eager, compiled = models.build(cfg, ops), models.build(cfg, ops)
    compiled.load_state_dict(eager.state_dict())
    return cfg, eager, compiled


def _forward_backward(model, tokens):
    hidden, _ = model(tokens)
    hidden.square().sum().backward()
    return hidden.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family,overrides", LOOP_BOUND, ids=lambda v: v if isinstance(v, str) else "")
def test_compiled_step_matches_eager_and_compiles_once(family, overrides):
    torch._dynamo.reset()
    cfg, eager, compiled = _pair(family, overrides)
    counter = CountingBackend()
    compiled.compile_step(backend=counter)
    graphs = None
    for T in ((8, 16) if family == "nsm" else (2, 3)):  # nsm: whole chunks, the compiled loop; T=2 meets every graph
        tokens = torch.randint(0, cfg.vocab_size, (2, T), generator=torch.Generator().manual_seed(T))
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
        h_e, g_e = _forward_backward(eager, tokens)
        h_c, g_c = _forward_backward(compiled, tokens)
        torch.testing.assert_close(h_c, h_e, rtol=1e-5, atol=1e-5)
        assert g_c.keys() == g_e.keys()
        for name in g_e:
            torch.testing.assert_close(g_c[name], g_e[name], rtol=1e-4, atol=1e-5, msg=name)
        if graphs is None:
            graphs = counter.graphs
            assert graphs >= 1, f"{family}: the compiled step was never called"
        else:  # a second length compiles nothing new
            assert counter.graphs == graphs, f"{family}: compiled again for T={T} ({graphs} -> {counter.graphs})"


@pytest.mark.parametrize("family,overrides", [("elman", dict(d_model=8, n_layers=1, rung=4, group_size=4)),
                                              ("transformer", dict(d_model=16, n_layers=1)),
                                              ("nsm", dict(variant="hybrid", d_model=16, n_layers=2, n_heads=2,
                                                           n_states=4, chunk=4))])
def test_no_step_loop_refused_with_why(family, overrides):
    _, _, model = _pair(family, overrides)
    with pytest.raises(ValueError, match=f"{family}: compile_step expected a config with a step loop"):
        model.compile_step()
    assert model.step_loop(model.config).why_not


def test_peer_compiles_the_step_of_a_loop_bound_family_and_the_whole_model_otherwise():
    _, _, loop_bound = _pair(*LOOP_BOUND[0])
    _, _, whole = _pair("transformer", dict(d_model=16, n_layers=1))
    assert compiled_loss(loop_bound)[1] == "step" and loop_bound.step_compiled == "default"
    assert compiled_loss(whole)[1] == "model" and whole.step_compiled == ""
    _, _, unrolled = _pair(*LOOP_BOUND[0])  # the peer torch_compile_model: the loop unrolled, the step not compiled
    assert compiled_loss(unrolled, whole=True)[1] == "model" and unrolled.step_compiled == ""


def test_a_compiled_peer_raises_dynamos_recompile_limit(monkeypatch):
    """Two compiled peers of one model share the cache of its code; past dynamo's limit (8)
    a frame would run eagerly under a compiled name. prepare raises it for every peer
    (compiled_loss stubbed: nothing is compiled here)."""
    from bench.modelbench import bench

    cfg, reference, _ = _pair("transformer", dict(d_model=16, n_layers=1))
    tokens = torch.randint(0, cfg.vocab_size, (2, 4))
    monkeypatch.setattr(bench, "compiled_loss", lambda model, whole=False: (bench.lm_loss, "model" if whole else "step"))
    for peer in ("torch_compile", "torch_compile_model"):
        with torch._dynamo.config.patch(recompile_limit=8):  # restored on exit (monkeypatch's undo deletes the key)
            prepared = bench.prepare(peer, cfg, tokens, tokens, reference)
            assert torch._dynamo.config.recompile_limit >= 256, peer
        assert prepared.extra["compile_scope"] == ("model" if peer == "torch_compile_model" else "step")


def test_nsm_compiled_runs_eagerly_off_chunk_boundaries():
    torch._dynamo.reset()
    cfg, eager, compiled = _pair(*LOOP_BOUND[1])
    counter = CountingBackend()
    compiled.compile_step(backend=counter)
    tokens = torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 6, dtype=torch.bool)
    for kwargs in ({}, {"mask": mask}):  # 6 tokens: not whole chunks of 4; a mask: the eager path
        torch.testing.assert_close(compiled(tokens, **kwargs)[0], eager(tokens, **kwargs)[0])
    assert counter.graphs == 0


def test_the_trainer_and_build_ask_for_the_compiled_step():
    """TrainConfig.compile_step (arsenal train --compile-step) and build(compile_step=True)
    reach SequenceModel.compile_step: a family without a step loop is refused with why."""
    import backends
    import models
    from bench.train import TrainConfig, train

    cfg = models.config("transformer", vocab_size=16, d_model=16, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match="transformer"):
        models.build(cfg, backends.resolve("torch"), compile_step=True)
    with pytest.raises(ValueError, match="transformer"):
        train(TrainConfig(family="transformer", model={"d_model": 16, "n_layers": 1, "n_heads": 2},
                          task="selective_copy", compile_step=True, steps=1, batch_size=4, out=None, progress=False,
                          task_args={"length": 16, "n_tokens": 4, "vocab": 8, "n_train": 16, "n_valid": 8, "n_test": 8},
                          device="cpu"))


def test_whole_model_compile_keeps_an_ops_token_loop_eager():
    """fastlane compiles whole (no step loop of its own), but the torch gated_update's
    bounded forward loops over tokens: above TRACE_MAX_T tokens it stays eager
    (torch.compiler.disable), so the graphs dynamo traces do not grow with T (unrolled
    they did: 174 s of compiling at T=1,024) and the compiled model gives the eager one's
    outputs and gradients."""
    from backends.torch.gated_update import TRACE_MAX_T

    torch._dynamo.reset()
    cfg, eager, compiled = _pair("fastlane", dict(d_model=8, n_layers=1, units=4, ffn_units=8))
    nodes = []

    def counting(gm, example_inputs):
        # nested graphs too: an autograd.Function's forward is traced into a subgraph
        nodes.append(sum(len(m.graph.nodes) for m in gm.modules() if isinstance(m, torch.fx.GraphModule)))
        return lookup_backend("aot_eager")(gm, example_inputs)

    forward = torch.compile(compiled, backend=counting, dynamic=False)
    per_length = []
    for T in (TRACE_MAX_T + 1, TRACE_MAX_T + 16):
        tokens = torch.randint(0, cfg.vocab_size, (2, T), generator=torch.Generator().manual_seed(T))
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
        h_e, g_e = _forward_backward(eager, tokens)
        before = len(nodes)
        hidden, _ = forward(tokens)
        hidden.square().sum().backward()
        per_length.append(sum(nodes[before:]))
        torch.testing.assert_close(hidden.detach(), h_e, rtol=1e-5, atol=1e-5)
        for name, p in compiled.named_parameters():
            torch.testing.assert_close(p.grad, g_e[name], rtol=1e-4, atol=1e-5, msg=name)
    assert per_length[0] > 0 and per_length[1] == per_length[0], f"traced nodes at two lengths: {per_length}"
