"""Arsenal's model layer: five families, each built from any backend mix (DESIGN.md 7).

    import backends, models
    ops = backends.resolve({"default": "numba_cpu"}, device="cpu")
    cfg = models.config("elman", vocab_size=256, d_model=64, n_layers=2, rung=4)
    model = models.build(cfg, ops)          # nn.Module with .config and .ops
    hidden, state = model(tokens)           # [B, T] int64 -> [B, T, d_model]
    hidden, state = model(more, state)      # continues the same sequences
    logits = model.logits(hidden)           # [B, T, vocab_size], tied to the embedding
    models.FAMILIES                         # name -> model class

The mix belongs to the run, not to the config: ``build`` draws the weights from
``config.seed``, so two builds of one config under two mixes hold the same weights and
accept each other's state_dict. A family registers itself with ``@register_family``.
"""

from __future__ import annotations

import importlib

import torch

from models.common import SequenceModel
from models.config import ModelConfig

FAMILIES: dict[str, type[SequenceModel]] = {}

# One module per family, in the order reports list them.
FAMILY_MODULES = ("transformer", "fastlane", "elman", "stackformer", "nsm")


def register_family(cls: type[SequenceModel]) -> type[SequenceModel]:
    """Class decorator: ``cls.Config.family`` names the family."""
    name = cls.Config.family
    if name in FAMILIES:
        raise ValueError(f"family '{name}' is registered twice ({FAMILIES[name].__module__}, {cls.__module__})")
    FAMILIES[name] = cls
    return cls


def _family(name: str) -> type[SequenceModel]:
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def config(family: str, **overrides) -> ModelConfig:
    """The family's frozen config with ``overrides``; unknown fields and bad values raise
    ValueError naming the family, the field, what was expected and what was given."""
    cls = _family(family).Config
    known = cls.__dataclass_fields__
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"{family} config: unknown field '{key}' (given {key}={value!r}); "
                             f"expected one of: {', '.join(known)}")
    return cls(**overrides)


def build(config: ModelConfig, ops, train: bool = True, compile_step: bool = False) -> SequenceModel:
    """The model of ``config`` calling the kernels of ``ops`` (an OpTable).

    With ``train`` (the default) a mix whose backend has no gradient for an op the
    family uses is refused: such a model could run but not learn. ``compile_step``: a
    loop-bound family's step compiled once (``SequenceModel.compile_step``; a config
    without a step loop is refused with the reason)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build: argument 'config' expected a config from models.config(...), got {type(config).__name__}")
    cls = _family(config.family)
    if not isinstance(config, cls.Config):
        raise TypeError(f"build: config of type {type(config).__name__} is not {cls.Config.__name__} of family '{config.family}'")
    if not hasattr(ops, "mix"):
        raise TypeError(f"build: argument 'ops' expected an OpTable from backends.resolve(mix, device), got {type(ops).__name__}")
    if train:
        for op in cls.ops_used(config):
            impl = getattr(ops, op)
            if not impl.grad:
                raise ValueError(f"{config.family}: the mix gives op '{op}' to backend '{ops.mix[op]}', which has no "
                                 f"gradient for it, so this model cannot be trained; give '{op}' another backend "
                                 "or build(config, ops, train=False) for inference")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = cls(config, ops)
    model = model.to(ops.device)
    return model.compile_step() if compile_step else model


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(family: str) -> dict:
    """Defaults, ops used and parameter count of a family's default config (for
    `arsenal models list`); the count is taken on a torch build, no kernel runs."""
    import backends

    cfg = config(family)
    model = build(cfg, backends.resolve("torch", "cpu"), train=False)
    return {"family": family, "defaults": cfg.to_dict(), "ops": FAMILIES[family].ops_used(cfg),
            "params": parameter_count(model), "doc": (FAMILIES[family].__doc__ or "").strip().splitlines()[0]}


for _module in FAMILY_MODULES:
    importlib.import_module(f"models.{_module}")

__all__ = ["FAMILIES", "config", "build", "register_family", "describe", "parameter_count", "ModelConfig",
           "SequenceModel"]
