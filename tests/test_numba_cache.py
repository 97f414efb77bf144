"""backends.numba_cache: an edit to any module of a Numba backend drops every cached
kernel of that backend, wherever Numba keeps it, and nothing else does."""

import os

import pytest

from backends import numba_cache


def _cache_files(folder):
    (folder / "__pycache__").mkdir(exist_ok=True)
    for name in ("kernel._f-1.py311.nbi", "kernel._f-1.py311.1.nbc"):
        (folder / "__pycache__" / name).write_bytes(b"compiled")


def test_an_edited_helper_drops_the_backends_cached_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / "kernel.py").write_text("from .helper import f\n")
    (backend / "helper.py").write_text("def f(x):\n    return x\n")
    elsewhere = tmp_path / "numba-cache" / numba_cache.cache_subpath(backend)
    elsewhere.mkdir(parents=True)
    (elsewhere / "kernel._f-1.py311.nbi").write_bytes(b"compiled")

    _cache_files(backend)
    assert numba_cache.refresh_when_edited(backend)  # no digest recorded yet: dropped
    assert sorted(p.name for p in (backend / "__pycache__").iterdir()) == [numba_cache.STAMP]
    assert not list(elsewhere.iterdir())

    _cache_files(backend)
    assert not numba_cache.refresh_when_edited(backend)  # unchanged: kept
    assert len(list((backend / "__pycache__").glob("*.nb?"))) == 2

    (backend / "helper.py").write_text("def f(x):\n    return 2 * x\n")
    assert numba_cache.refresh_when_edited(backend)
    assert not list((backend / "__pycache__").glob("*.nb?"))


def test_the_cache_subpath_is_numbas():
    caching = pytest.importorskip("numba.core.caching")
    locator = next(c for c in vars(caching).values()
                   if isinstance(c, type) and hasattr(c, "get_suitable_cache_subpath"))
    here = os.path.dirname(numba_cache.__file__)
    assert numba_cache.cache_subpath(here) == locator.get_suitable_cache_subpath(os.path.join(here, "x.py"))


def test_the_backends_record_their_digest_at_import():
    import backends.numba_cpu as cpu

    folder = os.path.dirname(cpu.__file__)
    with open(os.path.join(folder, "__pycache__", numba_cache.STAMP)) as f:
        assert f.read() == numba_cache.sources_digest(folder)
