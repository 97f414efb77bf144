"""nsm's own invariants: top-k routing keeps exactly k weights, routing weights sum to 1 on
real tokens and 0 on padding, every variant's parts exist and learn (communication only
where enabled, the memory heads in 'memory'), states that do not grow with T, the routing
records, the encoder and the config rules (the generic tests are in tests/test_models.py)."""

from __future__ import annotations

import pytest
import torch

import backends
import models
from models.nsm import routing_records
from tests.model_params import tokens

TORCH = backends.resolve("torch", "cpu")
CONFIGS = dict(models.FAMILIES["nsm"].test_configs)


def _build(cid, **over):
    cfg = models.config("nsm", **dict(CONFIGS[cid], **over))
    return cfg, models.build(cfg, TORCH)


def _padded(cfg, T=11):
    toks = tokens(cfg, T=T)
    mask = torch.ones_like(toks, dtype=torch.bool)
    mask[1, 6:] = False
    return toks, mask


@pytest.mark.parametrize("cid", ["simple", "topk", "seed", "hybrid", "memory"])
def test_routing_weights_sum_to_one_on_real_tokens(cid):
    cfg, model = _build(cid)
    toks, mask = _padded(cfg)
    weights = model.routing_weights(toks, mask)
    assert len(weights) == cfg.layers().count("N")
    for w in weights:
        assert w.shape == (2, 11, cfg.n_states)
        assert torch.allclose(w.sum(-1)[mask], torch.ones(()), atol=1e-6)
        assert (w[~mask] == 0).all()


def test_top_k_keeps_exactly_k_weights():
    cfg, model = _build("topk")
    toks, mask = _padded(cfg)
    (w,) = model.routing_weights(toks, mask)
    assert ((w > 0).sum(-1)[mask] == cfg.top_k).all()
    assert ((w > 0).sum(-1)[~mask] == 0).all()


def test_routing_of_chunks_equals_one_pass_and_is_recorded_on_request():
    cfg, model = _build("memory")
    toks = tokens(cfg, T=12)
    model(toks)
    assert model.routing is None
    whole = model.routing_weights(toks)
    model.record_routing = True
    parts, state = [], None
    for lo, hi in ((0, 3), (3, 9), (9, 12)):
        _, state = model(toks[:, lo:hi], state)
        parts.append(model.routing[0])
    assert torch.allclose(torch.cat(parts, 1), whole[0], atol=1e-6)


def _grads(model, T=12):
    toks = tokens(model.config, T=T)
    hidden, _ = model(toks)
    (hidden * torch.linspace(-1, 1, hidden.shape[-1])).sum().backward()
    return {n: p.grad for n, p in model.named_parameters()}


def _moves(grads, name):
    g = grads[name]
    return g is not None and g.abs().sum() > 0


NSM_PARTS = ("w_route", "b_route", "h0", "gate.w_in.weight", "gate.w_h.weight", "reader.out.weight")
COMM_PARTS = ("comm.qkv.weight", "comm.out.weight")
MEMORY_PARTS = ("memory.mem0", "memory.read_head.weight", "memory.write_head.weight", "memory.mem_in.weight")
PROJECTOR_PARTS = {"direct": ("reader.affinity.weight",),
                   "attention": ("reader.q.weight", "reader.k.weight", "reader.v.weight"),
                   "hybrid": ("reader.affinity.weight", "reader.q.weight", "reader.k.weight", "reader.v.weight",
                              "reader.mix.weight")}


@pytest.mark.parametrize("cid, comm, memory, blocks", [("simple", False, False, 0), ("hybrid", True, False, 1),
                                                       ("memory", False, True, 0), ("seed", False, False, 0)])
def test_each_variant_has_its_parts_and_they_get_gradient(cid, comm, memory, blocks):
    cfg, model = _build(cid)
    grads = _grads(model)
    nsm_layers = [i for i, kind in enumerate(cfg.layers()) if kind == "N"]
    assert sum(type(m).__name__ == "Block" for m in model.layers) == blocks
    for i in nsm_layers:
        parts = NSM_PARTS + PROJECTOR_PARTS[cfg.projector]
        parts += ("gate.norm.weight",) if cfg.state_norm else ()
        parts += ("prefix_map.weight",) if cfg.within_chunk == "linear" else ()
        for part in parts:
            assert _moves(grads, f"layers.{i}.{part}"), part
        for part in COMM_PARTS:
            assert (f"layers.{i}.{part}" in grads) == comm
            assert not comm or _moves(grads, f"layers.{i}.{part}"), part
        for part in MEMORY_PARTS:
            assert (f"layers.{i}.{part}" in grads) == memory
            assert not memory or _moves(grads, f"layers.{i}.{part}"), part
    assert ("nsm_embed.weight" in grads) == (cfg.embeddings == "separate")
    assert cfg.embeddings == "shared" or _moves(grads, "nsm_embed.weight")
    if blocks:
        assert _moves(grads, "layers.1.attn.qkv.weight")


def _nsm_shapes(model, state):
    return [{k: tuple(v.shape) for k, v in s.items()} for kind, s in zip(model.kinds, state["layers"]) if kind == "N"]


@pytest.mark.parametrize("cid", ["simple", "hybrid", "memory"])
def test_states_do_not_grow_with_length(cid):
    """The NSM layers' state is S states, a routed prefix and (memory) the memory, for
    any T; only the hybrid's transformer blocks keep a KV cache that grows."""
    cfg, model = _build(cid)
    shapes = []
    with torch.no_grad():
        for T in (5, 13):
            _, state = model(tokens(cfg, T=T))
            shapes.append(_nsm_shapes(model, state))
            assert state["pos"] == T
    assert shapes[0] == shapes[1]
    G = {"gru": 3, "lstm": 4, "seed": 3}[cfg.gate]
    expected = {"h": (2, 4, 16), "hp": (2, 4, G * 16), "acc": (2, 4, G * 16), "mass": (2, 4)}
    if cfg.within_chunk == "linear":
        expected["pp"] = (2, 4, 16)
    if cfg.gate == "lstm":
        expected["cell"] = (2, 4, 16)
    if cid == "memory":
        expected.update(mem=(2, cfg.mem_slots, 16), w_read=(2, 4, cfg.mem_slots), w_write=(2, 4, cfg.mem_slots))
    assert shapes[0][0] == expected


def test_routing_records():
    cfg, model = _build("hybrid", n_layers=3, layer_pattern="NTN")
    toks, mask = _padded(cfg, T=7)
    weights = model.routing_weights(toks, mask)
    records = routing_records(weights, toks, mask, config_id="hybrid-NTN", example=1)
    assert [r["layer"] for r in records] == [0, 1]
    for r in records:
        assert r["kind"] == "routing" and r["family"] == "nsm" and r["config_id"] == "hybrid-NTN"
        assert len(r["weights"]) == 7 and all(len(row) == cfg.n_states for row in r["weights"])
        assert r["tokens"] == toks[1].tolist() and r["mask"] == mask[1].tolist()
        assert all(isinstance(v, float) for row in r["weights"] for v in row)
    print(f"\nrouting record: layer {records[0]['layer']}, weights [T={len(records[0]['weights'])}]"
          f"[S={cfg.n_states}], first rows:")
    for t in range(3):
        print(f"  token {records[0]['tokens'][t]:3d} mask {records[0]['mask'][t]}: "
              + " ".join(f"{v:.3f}" for v in records[0]["weights"][t]))
    print(f"  padding row: {records[0]['weights'][-1]}")
    assert records[0]["weights"][-1] == [0.0] * cfg.n_states


def test_encoder_reads_the_whole_sequence():
    cfg, model = _build("memory", causal=False)
    toks = tokens(cfg, T=10)
    h, _ = model(toks)
    changed = toks.clone()
    changed[:, -1] = (changed[:, -1] + 1) % cfg.vocab_size
    assert not torch.allclose(model(changed)[0][:, 0], h[:, 0])


@pytest.mark.parametrize("over, field", [
    (dict(variant="simple", communication=True), "communication"),
    (dict(n_states=4, top_k=5), "top_k"),
    (dict(variant="hybrid", n_layers=2, layer_pattern="NX"), "layer_pattern"),
    (dict(variant="hybrid", n_layers=2, layer_pattern="TT"), "layer_pattern"),
    (dict(variant="hybrid", n_layers=3, layer_pattern="NT"), "layer_pattern"),
    (dict(variant="memory", communication=True, d_model=10, n_heads=4), "d_model"),
    (dict(variant="bayes"), "variant"),
    (dict(gate="rnn"), "gate"),
    (dict(projector="query"), "projector"),
    (dict(within_chunk="exact"), "within_chunk"),
    (dict(state_norm=1), "state_norm"),
    (dict(variant="simple", embeddings="separate"), "embeddings"),
    (dict(variant="hybrid", n_layers=2, embeddings="both"), "embeddings"),
])
def test_config_rules(over, field):
    with pytest.raises(ValueError, match=rf"nsm config: field '{field}' expected"):
        models.config("nsm", **over)
