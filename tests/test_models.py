"""What every family passes (DESIGN.md 7.8), built from models.FAMILIES: mix
invariance of hidden states and every gradient, causality, chunked == one pass,
step-by-step decoding == the full forward, shared weights across mixes, bad configs and
bad mixes, and the layering rule (models/ imports no backend folder, bench, suites or
reports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import backends
import models
from bench.modelbench.gate import close, hidden_and_grads, tolerance
from models.generate import Sampling, generate
from tests.model_params import (config_params, emulated, mix_device, mix_params, require_mix, tokens)

TORCH = backends.resolve("torch", "cpu")




@pytest.mark.parametrize("family, cid, over, mid, mix", mix_params())
def test_mix_invariance(request, family, cid, over, mid, mix):
    """Hidden states and all parameter gradients under the mix equal the all-torch
    build's of the same weights."""
    require_mix(request, mix)
    device = mix_device(mix)
    cfg = models.config(family, **over)
    ref = models.build(cfg, TORCH)
    model = models.build(cfg, backends.resolve(mix, device))
    model.load_state_dict(ref.state_dict())
    # 4 tokens under the interpreters (the stackformer's thinking in the CUDA simulator took
    # 21-23 s a mix at 6); the NSM's carry across chunks is model code, checked at 12 tokens
    T = 4 if emulated(mix) else 12
    toks = tokens(cfg, T=T)
    h_ref, g_ref = hidden_and_grads(ref, toks)
    h, g = hidden_and_grads(model, toks.to(device))
    tol = tolerance(cfg)
    ok, err = close(h.cpu(), h_ref, tol)
    assert ok, f"{family}-{cid} under {mid}: hidden error {err:.3g} > tol {tol:.3g}"
    for name in g_ref:
        ok, err = close(g[name].cpu(), g_ref[name], tol)
        assert ok, f"{family}-{cid} under {mid}: grad of {name}: error {err:.3g} > tol {tol:.3g}"


@pytest.mark.parametrize("family, cid, over", config_params())
def test_same_weights_under_every_mix(family, cid, over):
    """build draws weights from config.seed: two builds hold equal state_dicts."""
    cfg = models.config(family, **over)
    a, b = models.build(cfg, TORCH).state_dict(), models.build(cfg, TORCH).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family, cid, over", config_params())
def test_causality(family, cid, over):
    cfg = models.config(family, **over)
    if not cfg.causal:
        pytest.skip("bidirectional config")
    model = models.build(cfg, TORCH)
    toks = tokens(cfg, T=12)
    h, _ = model(toks)
    t = 7
    changed = toks.clone()
    changed[:, t] = (changed[:, t] + 1) % cfg.vocab_size
    h2, _ = model(changed)
    assert torch.allclose(h[:, :t], h2[:, :t], atol=1e-6), "a token changed outputs before it"
    assert not torch.allclose(h[:, t:], h2[:, t:]), "a token changed nothing after it"


def _in_pieces(model, toks, bounds):
    """Logits of ``toks`` fed in the pieces [lo, hi) of ``bounds``, the state carried."""
    parts, state = [], None
    for lo, hi in bounds:
        out, state = model(toks[:, lo:hi], state)
        parts.append(model.logits(out))
    return torch.cat(parts, 1)


@pytest.mark.parametrize("pieces", ["chunks", "tokens"])
@pytest.mark.parametrize("family, cid, over", config_params())
def test_pieces_equal_one_pass(family, cid, over, pieces):
    """Chunked == one pass, and decoding one token at a time from the state gives the
    full forward's logits."""
    cfg = models.config(family, **over)
    if not cfg.causal:
        pytest.skip("bidirectional config")
    model = models.build(cfg, TORCH)
    toks = tokens(cfg, T=12 if pieces == "chunks" else 8)
    bounds = ((0, 5), (5, 6), (6, 12)) if pieces == "chunks" else [(t, t + 1) for t in range(8)]
    ok, err = close(_in_pieces(model, toks, bounds), model.logits(model(toks)[0]), 1e-5)
    assert ok, f"{pieces} differ from one pass by {err:.3g}"


@pytest.mark.parametrize("family, cid, over", config_params())
def test_generate(family, cid, over):
    """Greedy generation continues the prompt as the full forward predicts it."""
    cfg = models.config(family, **over)
    if not cfg.causal:
        pytest.skip("bidirectional config")
    model = models.build(cfg, TORCH)
    prompt = tokens(cfg, B=2, T=5)
    out = generate(model, prompt, Sampling(max_new_tokens=4, temperature=0, patience=0))
    assert out.stop_reasons == ["length", "length"] and all(len(t) == 4 for t in out.tokens)
    seq = torch.cat([prompt, torch.tensor(out.tokens)], 1)
    with torch.no_grad():
        pred = model.logits(model(seq)[0]).argmax(-1)
    assert torch.equal(pred[:, 4:-1], seq[:, 5:])


def test_confidence_stop_and_eos():
    cfg = models.config("transformer", d_model=16, n_heads=2, n_layers=1)
    model = models.build(cfg, TORCH)  # untrained: near-uniform, every token is unsure
    out = generate(model, tokens(cfg, B=1, T=3), Sampling(max_new_tokens=50, temperature=1.0))
    assert out.stop_reasons == ["unsure"] and len(out.tokens[0]) == 3
    first = generate(model, tokens(cfg, B=1, T=3), Sampling(max_new_tokens=5, temperature=0, patience=0))
    eos = first.tokens[0][1]
    out = generate(model, tokens(cfg, B=1, T=3), Sampling(max_new_tokens=5, temperature=0, patience=0, eos_id=eos))
    assert out.stop_reasons == ["eos"] and out.tokens[0][-1] == eos and len(out.tokens[0]) <= 2
    with pytest.raises(ValueError, match="sampling config: field 'top_k'"):
        Sampling(top_k=0)


@pytest.mark.parametrize("family", list(models.FAMILIES))
def test_bad_config(family):
    with pytest.raises(ValueError, match=rf"{family} config: unknown field 'nonsense'"):
        models.config(family, nonsense=1)
    with pytest.raises(ValueError, match=rf"{family} config: field 'd_model' expected an int, got 'wide'"):
        models.config(family, d_model="wide")
    with pytest.raises(ValueError, match=rf"{family} config: field 'head' expected one of"):
        models.config(family, head="regress")
    with pytest.raises(ValueError, match=rf"{family} config: field 'n_layers' expected >= 1, got 0"):
        models.config(family, n_layers=0)


def test_unknown_family_and_bad_build_arguments():
    with pytest.raises(ValueError, match="unknown family 'rnn'; families: transformer"):
        models.config("rnn")
    cfg = models.config("transformer")
    with pytest.raises(TypeError, match="argument 'ops' expected an OpTable"):
        models.build(cfg, {"default": "torch"})
    with pytest.raises(TypeError, match="argument 'config' expected a config"):
        models.build({"family": "transformer"}, TORCH)


@pytest.mark.parametrize("family, cid, over", config_params())
def test_mix_without_gradient_refuses_training(monkeypatch, family, cid, over):
    cfg = models.config(family, **over)
    used = models.FAMILIES[family].ops_used(cfg)
    if not used:
        pytest.skip(f"{family}-{cid} calls no registry op")
    impl = backends.IMPLS[(used[0], "torch")]
    monkeypatch.setattr(impl, "grad", False)
    with pytest.raises(ValueError, match=rf"{family}: the mix gives op '{used[0]}' to backend 'torch', which has no gradient"):
        models.build(cfg, TORCH)
    models.build(cfg, TORCH, train=False)


@pytest.mark.parametrize("family, cid, over", config_params())
def test_heads(family, cid, over):
    for head, call in (("classify", "classify"), ("retrieval", "retrieve")):
        cfg = models.config(family, **dict(over, head=head, n_classes=3))
        model = models.build(cfg, TORCH)
        toks = tokens(cfg, T=6)
        mask = torch.ones_like(toks, dtype=torch.bool)
        mask[0, 4:] = False
        h, _ = model(toks, mask=mask)
        out = model.classify(h, mask) if call == "classify" else model.retrieve(h, mask, h.flip(0), mask.flip(0))
        assert out.shape == (2, 3) and torch.isfinite(out).all()


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_models_import_only_the_public_backend_api():
    """models/ may import `backends` (its public API) but no backend folder, nor bench,
    suites or reports."""
    root = Path(models.__file__).parent
    forbidden = ("bench", "suites", "reports") + tuple(f"backends.{n}" for n in backends.BACKEND_NAMES) + \
        ("backends.ops", "backends.registry", "backends.check")
    bad = [(p.name, m) for p in root.glob("*.py") for m in _imports(p)
           if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not bad, f"models/ imports outside the public API: {bad}"


@pytest.mark.parametrize("family, cid, over", config_params())
def test_learns(family, cid, over):
    """Within 40 Adam steps on a tiny deterministic LM task (each next token is the
    current one plus one, mod 16) the loss falls below two thirds of its first value; the
    loop stops there (the stackformer gets there in 10 steps of about 0.3 s)."""
    cfg = models.config(family, **dict(over, vocab_size=16))
    model = models.build(cfg, TORCH)
    start = torch.arange(4)[:, None]
    seq = (start + torch.arange(17)[None]) % 16  # [4, 17]
    x, y = seq[:, :-1], seq[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model.logits(model(x)[0]).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < 0.67 * losses[0]:
            break
    assert losses[-1] < 0.67 * losses[0], f"{family}-{cid}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps"
