"""Hugging Face datasets as corpora: formats, equality with load_corpus, the id cache,
parallel and streaming passes, pruning of the word table, and bad input."""

import gzip
import json
import os

import numpy as np
import pytest
from conftest import planted_topics_text

import w2v_jax.dataset as dataset_mod
from w2v_jax.corpus import load_corpus
from w2v_jax.dataset import cache_entry, load_dataset_corpus
from w2v_jax.errors import W2VError

# CRLF, tabs, Unicode spaces, blank and whitespace-only lines, rare (out-of-vocabulary) words.
MESSY = ("the cat sat\n\nthe dog\r\nsat\tthe  end\n   \nrare the\u3000cat\x0bthe\x85dog\n"
         "the\x1ccat \u2028\n" + planted_topics_text(n_lines=60, line_len=7)
         + "zebra a1 a1\nlast line without newline a2")


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    """Many batches even on tiny corpora, so batch order and merging are exercised."""
    monkeypatch.setattr(dataset_mod, "_BATCH_ROWS", 7)


def load(source, cache, messages=None, **kw):
    kw.setdefault("min_count", 1)
    log = messages.append if messages is not None else (lambda m: None)
    return load_dataset_corpus(source, cache_dir=cache, log=log, **kw)


def assert_same(a, b):
    (va, ca), (vb, cb) = a, b
    assert va.words == vb.words
    np.testing.assert_array_equal(va.counts, vb.counts)
    np.testing.assert_array_equal(ca.ids, cb.ids)
    np.testing.assert_array_equal(ca.sentence_lengths, cb.sentence_lengths)
    assert ca.raw_words == cb.raw_words


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TINY_ROWS = [{"id": 0, "body": "a b a"}, {"id": 1, "body": ""}, {"id": 2, "body": "c a"},
             {"id": 3, "body": "b"}]


def check_tiny(vocab, corpus):
    """min_count=2 on TINY_ROWS: a×3, b×2 kept, c dropped; the empty row is no sentence."""
    assert vocab.words == ("a", "b") and vocab.counts.tolist() == [3, 2]
    assert corpus.ids.tolist() == [0, 1, 0, 0, 1]
    assert corpus.sentence_lengths.tolist() == [3, 1, 1]
    assert corpus.raw_words == 6


@pytest.mark.parametrize("gz", [False, True])
def test_text_file_equals_load_corpus(tmp_path, gz):
    path = tmp_path / ("c.txt.gz" if gz else "c.txt")
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(MESSY)
    else:
        path.write_text(MESSY)
    vocab, corpus = load(path, tmp_path / "cache", min_count=2)
    assert_same((vocab, corpus), load_corpus(path, 2))
    assert "rare" not in vocab.words and len(vocab) > 10
    assert isinstance(corpus.ids, np.memmap) and corpus.ids.dtype == np.int32
    assert isinstance(corpus.sentence_lengths, np.memmap)
    assert not (tmp_path / "cache" / "hf").exists()  # datasets' Arrow copy went with the build


def test_long_rows_are_split_the_same_lazily(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_mod, "_LONG_ROW", 5)  # nearly every row takes the lazy path
    path = tmp_path / "c.txt"
    path.write_text(MESSY)
    assert_same(load(path, tmp_path / "cache", min_count=2), load_corpus(path, 2))


def test_jsonl_with_custom_column(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", TINY_ROWS)
    check_tiny(*load(path, tmp_path / "cache", text_column="body", min_count=2))


def test_parquet_with_custom_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(TINY_ROWS), path)
    check_tiny(*load(path, tmp_path / "cache", text_column="body", min_count=2))


def test_saved_dataset_and_dataset_dict(tmp_path):
    import datasets
    ds = datasets.Dataset.from_list(TINY_ROWS)
    other = datasets.Dataset.from_list([{"id": 9, "body": "zzz zzz zzz"}])
    ds.save_to_disk(tmp_path / "ds")
    datasets.DatasetDict({"test": other, "train": ds}).save_to_disk(tmp_path / "dd")
    datasets.DatasetDict({"valid": ds}).save_to_disk(tmp_path / "only")
    datasets.DatasetDict({"a": ds, "b": other}).save_to_disk(tmp_path / "ambiguous")
    for name in ("ds", "dd", "only"):
        check_tiny(*load(tmp_path / name, tmp_path / "cache", text_column="body", min_count=2))
    with pytest.raises(W2VError, match="splits a, b"):
        load(tmp_path / "ambiguous", tmp_path / "cache", text_column="body")


def test_num_proc_2_matches_serial(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(MESSY)
    serial = load(path, tmp_path / "c1", min_count=2)
    pids = tmp_path / "pids"
    count_batch = dataset_mod._count_batch

    def spy(texts, **kwargs):  # runs in the map workers: note which process counted
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return count_batch(texts, **kwargs)
    monkeypatch.setattr(dataset_mod, "_count_batch", spy)
    parallel = load(path, tmp_path / "c2", min_count=2, num_proc=2)
    assert_same(serial, parallel)
    assert_same(parallel, load_corpus(path, 2))
    workers = set(pids.read_text().split())
    assert len(workers) == 2 and str(os.getpid()) not in workers


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "saved"])
def test_streaming_matches_non_streaming(tmp_path, fmt, monkeypatch):
    rows = [{"text": line} for line in MESSY.split("\n")]
    if fmt == "txt":
        path = tmp_path / "c.txt"
        path.write_text(MESSY)
    elif fmt == "jsonl":
        path = write_jsonl(tmp_path / "c.jsonl", rows)
    else:
        import datasets
        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(path)
    kept = load(path, tmp_path / "c1", min_count=2)
    seen = []
    batch_results = dataset_mod._batch_results

    def spy(ds, *args):
        seen.append(type(ds).__name__)
        return batch_results(ds, *args)
    monkeypatch.setattr(dataset_mod, "_batch_results", spy)
    streamed = load(path, tmp_path / "c2", min_count=2, streaming=True)
    assert_same(kept, streamed)
    assert kept[1].ids.size > 300
    assert seen == ["IterableDataset"] * 2  # both passes iterated a stream


def test_second_call_uses_cache_without_tokenising(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(MESSY)
    first = load(path, tmp_path / "cache")

    def boom(*args, **kwargs):
        raise AssertionError("tokenised again")
    monkeypatch.setattr(dataset_mod, "_count_batch", boom)
    monkeypatch.setattr(dataset_mod, "_ids_batch", boom)
    messages = []
    assert_same(first, load(path, tmp_path / "cache", messages))
    assert any("using cached corpus" in m for m in messages)
    with pytest.raises(AssertionError, match="tokenised again"):  # refresh rebuilds
        load(path, tmp_path / "cache", refresh=True)


def test_key_changes_with_settings_and_contents(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("The the cat\ncat the\n")
    cache = tmp_path / "cache"
    base = cache_entry(path, min_count=1, cache_dir=cache)
    assert base == cache_entry(path, min_count=1, cache_dir=cache)
    assert base != cache_entry(path, min_count=2, cache_dir=cache)
    assert base != cache_entry(path, min_count=1, lowercase=True, cache_dir=cache)
    assert base != cache_entry(path, min_count=1, text_column="body", cache_dir=cache)
    assert load(path, cache)[0].words == ("the", "cat", "The")
    assert load(path, cache, lowercase=True)[0].words == ("the", "cat")
    assert load(path, cache, min_count=2)[0].words == ("the", "cat")
    path.write_text("dog dog cat\n")
    assert base != cache_entry(path, min_count=1, cache_dir=cache)
    assert load(path, cache)[0].words == ("dog", "cat")
    assert len(list((cache / "corpora").iterdir())) == 4


@pytest.mark.parametrize("damage", ["truncate ids", "drop meta", "ids out of range",
                                    "negative ids", "zero lengths", "lengths off"])
def test_corrupt_cache_entry_is_rebuilt(tmp_path, damage):
    path = tmp_path / "c.txt"
    path.write_text(MESSY)
    vocab, corpus = load(path, tmp_path / "cache")
    # In-memory copies: truncating the file changes what the first memmap reads.
    first = vocab, type(corpus)(np.array(corpus.ids), np.array(corpus.sentence_lengths),
                                corpus.raw_words)
    del corpus
    entry = cache_entry(path, min_count=1, cache_dir=tmp_path / "cache")
    # Damage that keeps the sizes (a zeroed page, bit rot) trained silently or crashed.
    ids = np.memmap(entry / "ids.i32", dtype="<i4", mode="r+")
    lengths = np.memmap(entry / "sentence_lengths.i64", dtype="<i8", mode="r+")
    if damage == "truncate ids":
        os.truncate(entry / "ids.i32", 12)
    elif damage == "drop meta":
        (entry / "meta.json").unlink()
    elif damage == "ids out of range":
        ids[5] = 10**6
    elif damage == "negative ids":
        ids[-1] = -5
    elif damage == "zero lengths":
        lengths[:] = 0
    else:
        lengths[0] += 1
    for a in (ids, lengths):
        if damage != "truncate ids":
            a.flush()
    del ids, lengths
    messages = []
    assert_same(first, load(path, tmp_path / "cache", messages))
    assert any("warning" in m and "rebuilding" in m for m in messages)
    assert not any("using cached" in m for m in messages)


def test_failed_build_leaves_no_entry(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(MESSY)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(dataset_mod, "_ids_batch", killed)
    with pytest.raises(KeyboardInterrupt):
        load(path, tmp_path / "cache")
    assert list((tmp_path / "cache" / "corpora").iterdir()) == []  # no entry, no temp dir
    monkeypatch.undo()
    assert_same(load(path, tmp_path / "cache"), load_corpus(path, 1))


def test_a_killed_builds_leftovers_are_removed_but_not_a_running_build(tmp_path):
    import fcntl

    path = tmp_path / "c.txt"
    path.write_text(MESSY)
    entry = cache_entry(path, min_count=1, cache_dir=tmp_path / "cache")
    entry.parent.mkdir(parents=True)
    killed = entry.parent / f".tmp-{entry.name}-dead0000"  # SIGKILL: no lock held
    (killed / "work").mkdir(parents=True)
    (entry.parent / f".old-{entry.name}-dead0000").mkdir()
    running = entry.parent / f".tmp-{entry.name}-live0000"
    (running / "work").mkdir(parents=True)
    with open(running.with_name(running.name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process building the same entry
        assert_same(load(path, tmp_path / "cache"), load_corpus(path, 1))
        left = sorted(p.name for p in entry.parent.iterdir())
    assert left == sorted([entry.name, running.name, running.name + ".lock"])


def test_pruned_word_table_stays_under_limit_and_keeps_frequent_counts(tmp_path):
    # Every line: 3 frequent words and 4 words seen once; 800 singletons in all.
    lines = [f"the of and u{4 * i} u{4 * i + 1} the u{4 * i + 2} u{4 * i + 3}" for i in range(200)]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(lines) + "\n")
    messages = []
    vocab, corpus = load(path, tmp_path / "cache", messages, min_count=2, max_vocab_types=20)
    exact_vocab, exact_corpus = load_corpus(path, 2)
    assert_same((vocab, corpus), (exact_vocab, exact_corpus))
    assert vocab.words == ("the", "of", "and") and vocab.counts.tolist() == [400, 200, 200]
    meta = json.loads((cache_entry(path, min_count=2, max_vocab_types=20,
                                   cache_dir=tmp_path / "cache") / "meta.json").read_text())
    assert 0 < meta["peak_types"] <= 20 and meta["prunes"] > 0
    assert any("approximate" in m for m in messages)


def test_count_table_prunes_rarest_first():
    table = dataset_mod._CountTable(limit=4)
    table.add(["a", "b", "c"], [5, 1, 2])
    table.add(["d", "e"], [1, 1])  # "d" fills the table; "e" forces a prune of counts ≤ 1
    assert list(table.counts.items()) == [("a", 5), ("c", 2), ("e", 1)]
    assert table.peak == 4 and table.threshold == 2


def test_missing_column_names_it_and_the_columns(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", TINY_ROWS)
    with pytest.raises(W2VError, match=r"no column 'text' \(columns: id, body\)"):
        load(path, tmp_path / "cache")
    with pytest.raises(W2VError, match="no column 'text'"):
        load(path, tmp_path / "cache", streaming=True)
    with pytest.raises(W2VError, match="text_column is empty"):
        load(path, tmp_path / "cache", text_column="")


def test_num_proc_with_a_stream_is_refused_not_ignored(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", TINY_ROWS)
    with pytest.raises(W2VError, match="num_proc does not apply to a stream"):
        load(path, tmp_path / "cache", streaming=True, num_proc=2)


@pytest.mark.parametrize("text", ["", "  \n\n \t\n"])
def test_empty_dataset(tmp_path, text):
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(W2VError, match="no words"):
        load(path, tmp_path / "cache")


def test_nothing_above_min_count_and_missing_path(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a b c\n")
    with pytest.raises(W2VError, match="min_count=5"):
        load(path, tmp_path / "cache", min_count=5)
    with pytest.raises(W2VError, match="does not exist"):
        load(tmp_path / "missing.txt", tmp_path / "cache")
    with pytest.raises(W2VError, match="no file matches"):
        load(str(tmp_path / "*.jsonl"), tmp_path / "cache")


def test_a_text_file_that_is_not_utf8_says_how_to_re_encode_it(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 na\xefve r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(W2VError, match="UnicodeDecodeError.*re-encode it as UTF-8"):
        load(path, tmp_path / "cache")


def test_a_byte_order_mark_is_dropped_as_by_load_corpus(tmp_path):
    from w2v_jax.corpus import load_corpus

    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfthe cat the dog\nthe end\n")
    vocab, _ = load(path, tmp_path / "cache", min_count=1)
    assert vocab.words == load_corpus(path, min_count=1)[0].words
    assert "\ufeffthe" not in vocab.words


def test_an_empty_saved_dataset_is_bad_input(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": []}).save_to_disk(str(tmp_path / "empty"))
    with pytest.raises(W2VError, match="has no rows|has no words"):
        load(tmp_path / "empty", tmp_path / "c")


def test_hub_check_tells_a_closed_port_from_a_listening_one(monkeypatch):
    import socket

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert dataset_mod._hub_unreachable() is None
    # The port is closed now: refused at once, no retries.
    assert dataset_mod._hub_unreachable() == f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user's own offline mode is left to datasets
    assert dataset_mod._hub_unreachable() is None


def test_uncached_hub_name_without_network_fails_fast_and_says_why(tmp_path, monkeypatch):
    import time

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    import datasets
    import huggingface_hub.constants

    for module, name in ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
                         (huggingface_hub.constants, "HF_HUB_OFFLINE")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    monkeypatch.setattr(dataset_mod, "_hub_unreachable", lambda: "https://hub.invalid")
    messages = []
    t = time.perf_counter()
    with pytest.raises(W2VError, match=r"not in the local cache .* the hub \(https://hub.invalid\) "
                                       r"cannot be reached"):
        load("someone/some-dataset", tmp_path / "c", messages)
    assert time.perf_counter() - t < 20  # the hub client's retries took ~27 s
    assert any("looking for someone/some-dataset in the local cache only" in m for m in messages)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_a_run_on_a_relative_glob_resumes_from_another_directory(tmp_path, monkeypatch):
    from w2v_jax.checkpoint import latest_meta
    from w2v_jax.config import Config
    from w2v_jax.run import DatasetOptions, train_run

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "s1.txt").write_text(planted_topics_text(n_lines=40))
    (tmp_path / "data" / "s2.txt").write_text(planted_topics_text(seed=1, n_lines=40))
    monkeypatch.chdir(tmp_path)
    cfg = Config(vector_size=8, epochs=1, min_count=1, batch_size=16, steps_per_call=8)
    train_run("run", cfg, dataset=DatasetOptions("data/s*.txt", cache_dir="cache"),
              log=lambda m: None)
    saved = latest_meta(tmp_path / "run" / "checkpoints")["dataset"]
    assert saved["source"] == str(tmp_path / "data" / "s*.txt")
    assert saved["cache_dir"] == str(tmp_path / "cache")
    (tmp_path / "run" / "vectors.bin").unlink()  # as a kill after the last checkpoint leaves it
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    messages = []
    train_run(tmp_path / "run", resume=True, log=messages.append)
    assert (tmp_path / "run" / "vectors.bin").exists()
    assert any("using cached corpus" in m for m in messages)  # not tokenised again
    assert not (tmp_path / "elsewhere" / "cache").exists()
