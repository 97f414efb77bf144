"""bench.results: append as produced, survive an interrupted write, skip damaged lines,
load into pandas in one line."""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from bench import results


def record(i, **extra):
    return {"run_id": "r", "group": i, "op": "parallel_scan", "backend": "torch", "variant": None,
            "case": {"B": 1, "T": 8, "D": 4}, "case_id": "B1-T8-D4", "dtype": "float32", "mode": "forward",
            "device": "cpu", "status": "ok", "samples_ns": [100 + i, 101 + i], "median_ns": 100.5 + i, **extra}


def test_append_then_read_round_trips_with_schema(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    for i in range(3):
        results.append(path, record(i))
    got = results.read(path)
    assert [r["group"] for r in got] == [0, 1, 2]
    assert all(r["schema"] == results.SCHEMA_VERSION for r in got)


def test_non_finite_numbers_become_null_so_pandas_reads_the_file(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append(path, record(0, rel_iqr=math.nan, gbps=math.inf, gate={"forward_error": -math.inf}))
    line = path.read_text()
    assert "NaN" not in line and "Infinity" not in line
    df = pd.read_json(path, lines=True)
    assert len(df) == 1 and df.loc[0, "backend"] == "torch"


def test_loader_gives_a_dataframe(tmp_path):
    path = tmp_path / "r.jsonl"
    for i in range(4):
        results.append(path, record(i))
    df = results.load(path)
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert list(df["median_ns"]) == [100.5, 101.5, 102.5, 103.5]


def test_a_cut_line_is_reported_with_its_number_and_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append(path, record(0))
    with open(path, "a") as f:  # a run killed in the middle of writing a line
        f.write(json.dumps(record(1))[:40])
    results.append(path, record(2))  # the next run starts on a fresh line
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["group"] == 2
    with pytest.warns(results.DamagedLineWarning, match=r"r\.jsonl:2: damaged line"):
        got = results.read(path)
    assert [r["group"] for r in got] == [0, 2]


def test_other_schemas_and_non_objects_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('[1, 2]\n{"schema": 999, "op": "x"}\n\n')
    results.append(path, record(0))
    with pytest.warns(results.DamagedLineWarning) as caught:
        df = results.load(path)
    assert len(df) == 1
    messages = " ".join(str(w.message) for w in caught)
    assert ":1: not a JSON object" in messages and ":2: schema 999" in messages


def test_an_interrupted_writer_keeps_what_it_finished(tmp_path):
    """A process appending records is killed; every record it finished loads."""
    path = tmp_path / "r.jsonl"
    script = textwrap.dedent(f"""
        import os, signal
        from bench import results
        for i in range(5):
            results.append({str(path)!r}, {{"op": "parallel_scan", "group": i, "samples_ns": [1, 2]}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    repo = Path(results.__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=repo)
    assert proc.returncode != 0  # killed
    assert [r["group"] for r in results.read(path)] == list(range(5))


def test_latest_record_of_a_key_wins():
    a, b = record(0, median_ns=1.0), record(1, median_ns=2.0)
    assert results.key(a) == results.key(b)
    assert results.latest([a, b])[results.key(a)]["median_ns"] == 2.0
