"""The task API and the offline generators (suites/tasks), on small configs."""

from __future__ import annotations

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
    (dict(min_length=100, max_length=50), ["max_length", "min_length", "50"]),
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
