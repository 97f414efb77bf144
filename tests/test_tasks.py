"""The task API and the offline generators (suites/tasks), on small configs."""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np
import pytest
import torch

from suites import tasks
from suites.tasks import listops


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


SMALL = {
    "listops": dict(min_length=10, max_length=48, n_train=40, n_valid=8, n_test=8),
}


def _eval_prefix(tokens: list[str]) -> int:
    """An evaluator written apart from the generator: a stack over the prefix tokens."""
    stack: list[list] = []
    result = None
    for tok in tokens:
        if tok.startswith("["):
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            v = {"[MIN": min, "[MAX": max,
                 "[MED": lambda a: int(statistics.median(a)),
                 "[SM": lambda a: sum(a) % 10}[op](args)
            if stack:
                stack[-1].append(v)
            else:
                result = v
        else:
            if stack:
                stack[-1].append(int(tok))
            else:
                result = int(tok)
    assert not stack
    return result


def test_listops_labels_agree_with_an_independent_evaluator():
    rows = listops.generate(300, seed=3, min_length=5, max_length=200)
    for text, label in rows:
        assert _eval_prefix(text.replace("(", " ").replace(")", " ").split()) == label


def test_listops_lengths_distinct_and_seeded():
    rows = listops.generate(200, seed=1, min_length=20, max_length=60, max_depth=6, max_args=5)
    lengths = [len(listops.tokenize(t)) for t, _ in rows]
    assert all(20 < n < 60 for n in lengths)
    assert len({t for t, _ in rows}) == len(rows)
    assert rows == listops.generate(200, seed=1, min_length=20, max_length=60, max_depth=6, max_args=5)
    assert rows != listops.generate(200, seed=2, min_length=20, max_length=60, max_depth=6, max_args=5)
    # the rules: 2..max_args arguments under each operator, depth <= max_depth
    for text, _ in rows:
        depth = max_depth = 0
        for tok in text.replace("(", " ").replace(")", " ").split():
            depth += tok.startswith("[")
            depth -= tok == "]"
            max_depth = max(max_depth, depth)
        assert max_depth <= 5  # operators sit above the leaves: at most max_depth - 1 levels


def test_listops_lra_format():
    text, label = listops.generate(1, seed=0, min_length=3, max_length=10)[0]
    assert text.startswith("( ") and text.endswith(" ] )")
    assert listops.to_string(("[MAX", [2, 9])) == "( ( ( [MAX 2 ) 9 ) ] )"
    assert listops.value(("[MED", [1, 2, 3, 4])) == 2 and listops.value(("[SM", [7, 8])) == 5


def test_listops_task_batches():
    task = tasks.get("listops", **SMALL["listops"])
    assert (task.kind, task.metric, task.n_classes, task.vocab_size, task.seq_len) == ("classify", "accuracy", 10, 16, 48)
    batches = list(task.batches("train", 16, seed=0))
    assert len(batches) == 40 // 16
    b = batches[0]
    assert b["tokens"].shape == (16, 48) and b["tokens"].dtype == torch.int64
    assert b["mask"].dtype == torch.bool and b["target"].shape == (16,)
    assert ((b["tokens"] != 0) == b["mask"]).all()  # padding is 0, exactly where the mask is False
    lengths = b["mask"].sum(1)
    assert ((lengths > 10) & (lengths < 48)).all()
    again = next(tasks.get("listops", **SMALL["listops"]).batches("train", 16, seed=0))
    assert all(torch.equal(b[k], again[k]) for k in b)
    other = next(task.batches("train", 16, seed=1))
    assert not torch.equal(b["tokens"], other["tokens"])
    valid = list(task.batches("valid", 5))
    assert [len(v["target"]) for v in valid] == [5, 3]
    assert any(a.model == "S4" and a.value == 59.60 for a in task.anchors)
    assert tasks.get("listops").min_length == 500 and tasks.get("listops", max_length=512).min_length == 128


def test_listops_cached(data_dir):
    task = tasks.get("listops", **SMALL["listops"])
    first = task.arrays("test")["tokens"]
    assert list((data_dir / "arrays").glob("listops-*.npz"))
    assert np.array_equal(tasks.get("listops", **SMALL["listops"]).arrays("test")["tokens"], first)


@pytest.mark.parametrize("overrides, words", [
    (dict(max_lenght=5), ["listops", "max_lenght", "valid fields"]),
    (dict(max_length="long"), ["listops", "max_length", "int", "'long'"]),
    (dict(max_length=True), ["max_length", "int", "True"]),
    (dict(max_depth=0), ["max_depth", ">= 1", "0"]),
    (dict(source="tfds"), ["source", "'generated'", "'tfds'"]),
    (dict(min_length=100, max_length=50), ["max_length", "min_length + 2 = 102", "50"]),
    (dict(min_length=-1), ["min_length", ">= 0", "-1"]),
    (dict(source="lra"), ["lra_dir", "None"]),
])
def test_bad_configs_are_rejected_clearly(overrides, words):
    with pytest.raises(ValueError) as e:
        tasks.get("listops", **overrides)
    for w in words:
        assert w in str(e.value)


def test_unknown_task_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown task 'lisops'; valid: .*listops"):
        tasks.get("lisops")


def test_bad_split_and_batch_size():
    task = tasks.get("listops", **SMALL["listops"])
    with pytest.raises(ValueError, match="split expects one of train, valid, test, got 'val'"):
        next(task.batches("val", 4))
    with pytest.raises(ValueError, match="batch_size expects an int >= 1, got 0"):
        next(task.batches("train", 0))


def test_configs_are_frozen():
    task = tasks.get("listops")
    with pytest.raises(AttributeError):
        task.config.max_length = 3


# --- synthetic diagnostics ------------------------------------------------------------

from suites.tasks import induction, mqar, pathfinder, selective_copy, show  # noqa: E402


def test_selective_copy():
    tokens, target = selective_copy.generate(50, seed=0, length=40, n_tokens=5, vocab_size=8)
    assert tokens.shape == target.shape == (50, 50)
    for x, y in zip(tokens, target):
        data = x[:45][x[:45] != 0]
        assert len(data) == 5 and ((data >= 1) & (data <= 6)).all()
        assert (x[45:] == 7).all()                       # the markers
        assert (y[45:] == data).all() and (y[:45] == tasks.IGNORE).all()
    again = selective_copy.generate(50, seed=0, length=40, n_tokens=5, vocab_size=8)
    assert np.array_equal(tokens, again[0])
    task = tasks.get("selective_copy", length=40, n_tokens=5, vocab=8, n_train=20, n_valid=4, n_test=4)
    assert (task.kind, task.metric, task.vocab_size, task.seq_len) == ("lm", "accuracy", 8, 50)
    b = next(task.batches("train", 4))
    assert b["target"].shape == (4, 50) and b["mask"].all()


def test_induction():
    tokens, target = induction.generate(40, seed=1, seq_len=30, vocab_size=6)
    for x, y in zip(tokens, target):
        where = np.nonzero(x == 5)[0]
        assert len(where) == 2 and where[1] == 29        # the trigger once, and at the end
        assert y[-1] == x[where[0] + 1] and (y[:-1] == tasks.IGNORE).all()
    task = tasks.get("induction", seq_len=16, test_seq_len=64, vocab=6, n_train=8, n_valid=2, n_test=2)
    assert next(task.batches("train", 4))["tokens"].shape == (4, 16)
    assert next(task.batches("test", 4))["tokens"].shape == (2, 64)


def test_mqar():
    tokens, target = mqar.generate(30, seed=2, seq_len=64, n_kv=4, vocab_size=64)
    for x, y in zip(tokens, target):
        keys, values = x[0:8:2], x[1:8:2]
        assert len(set(keys)) == 4 and ((keys >= 1) & (keys < 32)).all() and (values >= 32).all()
        queries = np.nonzero(y != tasks.IGNORE)[0]
        assert len(queries) == 4 and (queries >= 8).all() and (queries % 2 == 0).all()
        pairs = dict(zip(keys.tolist(), values.tolist()))
        assert sorted(x[queries].tolist()) == sorted(keys.tolist())   # every key queried once
        assert all(pairs[int(x[q])] == y[q] for q in queries)
    # gaps follow p(g) ~ g^(a-1): near queries are likelier
    _, target = mqar.generate(400, seed=3, seq_len=64, n_kv=4, vocab_size=64)
    gaps = (np.nonzero(target != tasks.IGNORE)[1] - 8) // 2
    assert (gaps < 14).mean() > 0.6
    with pytest.raises(ValueError, match="'mqar': field 'n_kv' expects an int <= seq_len / 4 = 16, got 17"):
        tasks.get("mqar", seq_len=64, n_kv=17)
    with pytest.raises(ValueError, match="'mqar': field 'seq_len' expects an even int, got 63"):
        tasks.get("mqar", seq_len=63)


def test_pathfinder_renders_and_is_seeded():
    images, labels = pathfinder.generate(6, seed=4, resolution=32, contour_length=6)
    assert images.shape == (6, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int8
    assert set(labels.tolist()) <= {0, 1}
    assert all((im == 255).sum() >= 2 for im in images)     # the two markers at full intensity
    assert all(((im > 0) & (im < 255)).sum() > 40 for im in images)  # paddles
    first, _ = pathfinder.generate(3, seed=4, resolution=32, contour_length=6)
    assert np.array_equal(first, images[:3])                 # image i depends on (seed, i) only
    assert not np.array_equal(pathfinder.generate(3, seed=5, resolution=32, contour_length=6)[0], first)
    _, many = pathfinder.generate(60, seed=0, resolution=32, contour_length=6)
    assert 0.3 < many.mean() < 0.7


def test_pathfinder_workers_give_the_same_images(monkeypatch):
    monkeypatch.setattr(pathfinder, "CHUNK", 2)
    one = pathfinder.generate(4, seed=1, resolution=32, contour_length=6, workers=1)
    two = pathfinder.generate(4, seed=1, resolution=32, contour_length=6, workers=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_pathfinder_task_and_pathx_defaults():
    task = tasks.get("pathfinder", contour_length=6, n_train=4, n_valid=2, n_test=2, workers=1)
    assert (task.seq_len, task.vocab_size, task.n_classes) == (1024, 256, 2)
    b = next(task.batches("train", 2))
    assert b["tokens"].shape == (2, 1024) and b["tokens"].max() == 255
    px = tasks.get("pathx")
    assert (px.seq_len, px.config.resolution, px.config.n_train) == (16384, 128, 16_000)
    assert any(a.model == "S4" and a.value == 96.35 for a in px.anchors)


def test_show_grid_png_and_pgm(tmp_path):
    images = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    g = show.grid(images, cols=2, gap=1)
    assert g.shape == (7, 7) and (g[:3, :3] == images[0]).all() and (g[4:, 4:] == images[3]).all()
    pgm = show.save(g, tmp_path / "g.pgm")
    assert pgm.read_bytes().startswith(b"P5\n7 7\n255\n")
    pytest.importorskip("PIL")
    assert show.save(g, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_every_task_has_a_checked_default_config():
    assert set(tasks.TASKS) >= {"listops", "pathfinder", "pathx", "image", "text", "retrieval", "selective_copy",
                                "induction", "mqar", "ptb_char", "ptb_word", "shakespeare_char"}
    for name in tasks.TASKS:
        task = tasks.get(name)
        assert task.kind in ("lm", "classify", "retrieval") and task.metric in ("accuracy", "bits_per_byte")
        assert task.seq_len >= 1 and task.source
        assert (task.n_classes is None) == (task.kind == "lm")
        assert dataclasses.is_dataclass(task.config) and type(task.config).__dataclass_params__.frozen
