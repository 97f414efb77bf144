"""The layer rules (DESIGN.md 1, CONTRIBUTING.md) and the one mix vocabulary.

- every module of the project imports in a fresh interpreter (no cycle, no missing name);
- backends/ imports nothing above it (models, bench, suites, reports);
- models/ uses only backends' public API (``import backends``, ``from backends import
  ...``), never a backend's module;
- reports/ reads results files: no backend, model or suite;
- bench/commands/ modules import no other command (``arsenal run`` composes library
  calls), and the trainer does not import the commands;
- one ``mix_id`` in the code base, and every producer of a record with a ``mix_id`` writes
  the canonical one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backends", "models", "suites", "bench", "reports")


def modules() -> list[tuple[str, Path]]:
    """(dotted name, file) of every module of the five packages but the pytest files
    under suites/pytest (they are test modules, collected by pytest only)."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if "pytest" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), path))
    return out


def imported(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (module level or inside a
    function: a lazy import still ties the layers together)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def test_every_module_imports_in_a_fresh_interpreter():
    names = [n for n, _ in modules() if not n.endswith("__main__")]
    code = ("import importlib, sys\nbad = []\n"
            f"for n in {names!r}:\n"
            "    try:\n        importlib.import_module(n)\n"
            "    except Exception as exc:\n        bad.append(f'{n}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"TRITON_INTERPRET": "1", "NUMBA_ENABLE_CUDASIM": "1", "PATH": "/usr/bin:/bin",
                               "HOME": str(Path.home())})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


@pytest.mark.parametrize("layer, forbidden", [
    ("backends", {"models", "bench", "suites", "reports"}),
    ("models", {"bench", "suites", "reports"}),
    ("reports", {"backends", "models", "suites"}),
])
def test_a_layer_imports_nothing_above_it(layer, forbidden):
    bad = [f"{name}: {imp}" for name, path in modules() if top(name) == layer
           for imp in sorted(imported(path)) if top(imp) in forbidden]
    assert not bad, f"{layer}/ imports above its layer:\n" + "\n".join(bad)


def test_models_use_only_the_public_api_of_backends():
    import backends

    public = {"backends", *(f"backends.{n}" for n in backends.__all__)}
    bad = [f"{name}: {imp}" for name, path in modules() if top(name) == "models"
           for imp in sorted(imported(path)) if top(imp) == "backends" and imp not in public]
    assert not bad, "models/ reaches past backends' public API:\n" + "\n".join(bad)


def test_commands_import_no_command_and_the_trainer_no_command():
    bad = []
    for name, path in modules():
        for imp in imported(path):
            if not imp.startswith("bench.commands.") or imp.split(".")[2] in ("_args", "MODULES", "load"):
                continue
            if name.startswith("bench.commands.") or name.startswith("bench.train"):
                bad.append(f"{name}: {imp}")
    assert not bad, "\n".join(bad)


def test_one_mix_id_in_the_code_base():
    defined = [f"{name}" for name, path in modules()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == "mix_id"]
    assert defined == ["backends.mix"]


def test_the_canonical_mix_id():
    from backends.mix import alias_note, mix_id, parse_mix

    written = {"default": "torch", "micro_mlp": "numba_cpu", "logspace_matvec": "numba_cpu"}
    assert mix_id(written) == "torch+logspace_matvec=numba_cpu+micro_mlp=numba_cpu"
    # the same mix written every way: as a resolved full mix, as the alias, as an id with unsorted moves
    import backends

    full = dict(backends.resolve(written, "cpu").mix)
    assert mix_id(full) == mix_id("default=torch,micro_mlp=numba_cpu,logspace_matvec=numba_cpu") == \
        mix_id("torch+micro_mlp=numba_cpu+logspace_matvec=numba_cpu") == mix_id(written)
    # the default is the backend of most ops, whatever the mix called its default
    most = {"default": "numba_cpu", **{op: "torch" for op in list(backends.OPS)[1:]}}
    assert mix_id(most) == f"torch+{list(backends.OPS)[0]}=numba_cpu"
    assert mix_id("numba_cpu") == "numba_cpu" and mix_id("torch_compile") == "torch_compile"
    assert parse_mix(mix_id(written)) == {"default": "torch", "logspace_matvec": "numba_cpu", "micro_mlp": "numba_cpu"}
    assert alias_note("default=torch,parallel_scan=numba_cpu") == \
        "mix 'default=torch,parallel_scan=numba_cpu' is 'torch+parallel_scan=numba_cpu'"
    assert alias_note("torch+parallel_scan=numba_cpu") is None
    for bad, match in (("torch+nope=numba_cpu", "unknown op"), ("torch+parallel_scan", "DEFAULT\\+op=backend"),
                       ("torch+parallel_scan=gpu9", "unknown backend"), ("", "expected a mix id")):
        with pytest.raises(ValueError, match=match):
            mix_id(bad)


def test_every_producer_writes_the_canonical_mix_id(tmp_path):
    """The trainer, the model bench and the equivalence check, each given a mix written
    as the alias with its moves out of order, record the canonical id."""
    from backends.mix import mix_id
    from bench.modelbench.bench import ModelBench, ModelBenchConfig
    from bench.modelbench.equivalence import equivalence
    from bench.timing import TimingConfig
    from bench.train import TrainConfig, train

    given = "default=torch,parallel_scan=numba_cpu,gated_update=numba_cpu"
    canonical = "torch+gated_update=numba_cpu+parallel_scan=numba_cpu"
    assert mix_id(given) == canonical
    from backends.mix import parse_mix

    res = train(TrainConfig(family="elman", model={"d_model": 8, "n_layers": 1, "rung": 4}, mix=parse_mix(given),
                            task="selective_copy", task_args={"length": 16, "n_tokens": 4, "vocab": 8, "n_train": 16,
                                                              "n_valid": 8, "n_test": 8},
                            steps=1, batch_size=4, out=None, progress=False, device="cpu"))
    assert {r["mix_id"] for r in res.records} == {canonical}
    quick = TimingConfig(budget_s=0.05, min_reps=2, min_rounds=1, max_reps=2, warmup_s=0.0, block_s=0.0)
    bench = ModelBench(ModelBenchConfig(device="cpu", timing=quick, decode_timing=quick, breakdown=False,
                                        prefill=False, gate_T=8), out=None)
    recs = bench.run("elman", "rung4", dict(d_model=8, n_layers=1, rung=4), 1, 8, [given], peers=(), role="grid")
    assert [r["mix_id"] for r in recs] == [canonical]
    rec = equivalence("elman", "rung4", dict(d_model=8, n_layers=1, rung=4), given, steps=2, B=1, T=8)
    assert rec["mix_id"] == canonical


def test_records_written_before_the_one_vocabulary_read_with_the_canonical_id():
    """The trainer wrote moves in contract order before; reading maps them to mix_id's."""
    from backends.mix import mix_id
    from bench.results import legacy_mix_id, validate

    old = "torch+micro_mlp=numba_cpu+logspace_matvec=numba_cpu"
    assert legacy_mix_id(old) == mix_id(old) == "torch+logspace_matvec=numba_cpu+micro_mlp=numba_cpu"
    for same in ("numba_cpu", "torch_compile", "torch+parallel_scan=numba_cpu"):
        assert legacy_mix_id(same) == mix_id(same) == same
    rec = {"schema": 1, "kind": "train", "run_id": "r", "time": "2026-11-25T12:00:00+00:00", "train_id": "t",
           "family": "fastlane", "mix_id": old, "task": "listops", "step": 1, "split": "train", "loss": 1.0}
    clean, problems = validate(rec)
    assert clean["mix_id"] == "torch+logspace_matvec=numba_cpu+micro_mlp=numba_cpu" and not problems
