"""Reading corpora: formats, sentence bounds, huge lines, and bad input."""

import bz2
import gzip
import lzma
import os
import threading
import time

import numpy as np
import pytest

from w2v_jax import corpus as corpus_module
from w2v_jax.corpus import embedded_corpus_path, load_corpus, scan
from w2v_jax.errors import W2VError


def test_scan_counts_types_and_lines(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("the cat sat\n\nthe dog\r\nsat\tthe  end\n")
    types, counts, tokens, lengths = scan(p)
    assert types == ["the", "cat", "sat", "dog", "end"]
    assert counts.tolist() == [3, 1, 2, 1, 1]
    assert [types[t] for t in tokens] == "the cat sat the dog sat the end".split()
    assert lengths.tolist() == [3, 2, 3]  # empty line skipped, CRLF and tabs are whitespace


def test_gzip_equals_plain(tmp_path):
    text = "a b c a\nb a\n"
    (tmp_path / "c.txt").write_text(text)
    with gzip.open(tmp_path / "c.txt.gz", "wt") as f:
        f.write(text)
    v1, c1 = load_corpus(tmp_path / "c.txt", min_count=1)
    v2, c2 = load_corpus(tmp_path / "c.txt.gz", min_count=1)
    assert v1.words == v2.words == ("a", "b", "c")
    np.testing.assert_array_equal(c1.ids, c2.ids)
    assert c1.raw_words == c2.raw_words == 6


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress])
def test_bzip2_and_xz_equal_plain(tmp_path, compress):
    text = b"a b c a\nb a\n" * 3
    (tmp_path / "c.txt").write_bytes(text)
    (tmp_path / "c.cmp").write_bytes(compress(text))
    (v1, c1), (v2, c2) = (load_corpus(tmp_path / n, min_count=1) for n in ("c.txt", "c.cmp"))
    assert v1.words == v2.words and c1.raw_words == c2.raw_words == 18
    np.testing.assert_array_equal(c1.ids, c2.ids)


@pytest.mark.parametrize("gz", [False, True])
def test_a_pipe_is_read_whole(tmp_path, gz):
    """The format is told apart without a second open, which would lose a pipe's start."""
    text = "".join(f"w{i % 97} w{i % 13} w{i % 7}\n" for i in range(5000)).encode()
    data = gzip.compress(text) if gz else text
    r, w = os.pipe()

    def write():  # the magic bytes one at a time, as a slow producer may send them
        for i in range(3):
            os.write(w, data[i:i + 1])
            time.sleep(0.05)
        os.write(w, data[3:])
        os.close(w)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        vocab, corpus = load_corpus(f"/dev/fd/{r}", min_count=1)
    finally:
        writer.join()
        os.close(r)
    assert corpus.raw_words == 15000 and len(vocab) == 97


def test_words_separated_only_by_unicode_spaces(tmp_path, monkeypatch):
    """A block with no ASCII whitespace is cut at any other space str.split() knows
    (else, with no cut for _MAX_WORD bytes, it is refused as not a text corpus)."""
    monkeypatch.setattr("w2v_jax.corpus._BLOCK", 64)
    monkeypatch.setattr("w2v_jax.corpus._MAX_WORD", 256)
    seps = list(corpus_module._OTHER_SPACES)
    words = [f"日本{i % 5}" for i in range(400)]
    text = b"".join(w.encode() + seps[i % len(seps)] for i, w in enumerate(words))
    (tmp_path / "c.txt").write_bytes(text)
    vocab, corpus = load_corpus(tmp_path / "c.txt", min_count=1)
    assert [vocab.words[i] for i in corpus.ids] == words
    assert corpus.sentence_lengths.tolist() == [400]  # none of them is a line break


def test_the_unicode_spaces_are_all_of_str_split_s_others():
    others = {chr(c) for c in range(0x3001) if chr(c).isspace()} - set(" \t\n\r")
    assert {sp.decode() for sp in corpus_module._OTHER_SPACES} == others


def test_out_of_vocabulary_words_are_dropped_but_counted_as_raw(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("a a b\nrare a b\n")
    vocab, corpus = load_corpus(p, min_count=2)
    assert vocab.words == ("a", "b")
    assert corpus.ids.tolist() == [0, 0, 1, 0, 1]
    assert corpus.sentence_lengths.tolist() == [3, 2]
    assert corpus.raw_words == 6


def test_one_huge_line_across_read_blocks(tmp_path, monkeypatch):
    import w2v_jax.corpus as corpus_mod
    monkeypatch.setattr(corpus_mod, "_BLOCK", 1000)  # many blocks, words cut at block ends
    words = [f"w{i % 37}" for i in range(20_000)]
    p = tmp_path / "one-line.txt"
    p.write_text(" ".join(words))
    types, counts, tokens, lengths = scan(p)
    assert lengths.tolist() == [20_000]
    assert [types[t] for t in tokens] == words


def test_embedded_corpus_is_there():
    vocab, corpus = load_corpus(embedded_corpus_path(), min_count=5)
    assert corpus.raw_words > 700_000
    assert "king" in vocab.index() and len(vocab) > 4000


@pytest.mark.parametrize("content, match", [
    (b"", "no words"),
    (b"  \n\t\n  ", "no words"),
    (b"caf\xe9 ok\n", "not valid UTF-8"),
])
def test_bad_content(tmp_path, content, match):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(W2VError, match=match):
        load_corpus(p, min_count=1)


def test_all_words_below_min_count(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("a b c d\n")
    with pytest.raises(W2VError, match="lower --min-count"):
        load_corpus(p, min_count=5)


def test_bad_paths(tmp_path):
    with pytest.raises(W2VError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(W2VError, match="is a directory"):
        load_corpus(tmp_path)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(b"a b c " * 1000)[:40])
    with pytest.raises(W2VError, match="could not read corpus"):
        load_corpus(broken)


def test_sentence_ids_of_any_range_with_empty_sentences():
    from w2v_jax.corpus import Corpus

    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 6, 300) * (rng.random(300) < 0.8)  # many empty sentences
    n = int(lengths.sum())
    corpus = Corpus(np.zeros(n, np.int32), lengths, n)
    every = np.repeat(np.arange(lengths.size), lengths)  # token t lies in sentence every[t]
    np.testing.assert_array_equal(corpus.sentence_ids(), every)
    for _ in range(200):
        a = int(rng.integers(0, n + 1))
        b = int(rng.integers(a, n + 1))
        got = corpus.sentence_ids(a, b)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, every[a:b])


def test_blocks_and_lines_in_any_alignment_give_the_same_corpus(tmp_path, monkeypatch):
    # load_corpus maps the tokens block by block; lines (and their dropped rare words)
    # straddle blocks wherever the cut falls, and each line's kept length must not care.
    import w2v_jax.corpus as corpus_mod

    rng = np.random.default_rng(0)
    lines = [" ".join(f"w{int(rng.zipf(1.5)) % 300}" for _ in range(rng.integers(0, 40)))
             for _ in range(400)]
    p = tmp_path / "c.txt"
    p.write_text("\n".join(lines) + "\n")
    vocab, whole = load_corpus(p, min_count=3)
    index = vocab.index()
    assert whole.ids.tolist() == [index[w] for line in lines for w in line.split() if w in index]
    kept = [sum(w in index for w in line.split()) for line in lines]
    assert whole.sentence_lengths.tolist() == [k for k in kept if k]
    for block in (7, 64, 1000):
        monkeypatch.setattr(corpus_mod, "_BLOCK", block)
        _, cut = load_corpus(p, min_count=3)
        np.testing.assert_array_equal(cut.ids, whole.ids)
        np.testing.assert_array_equal(cut.sentence_lengths, whole.sentence_lengths)


def test_loading_leaves_no_free_arenas_pinned_by_the_vocabulary(tmp_path):
    # Each kept word's first occurrence is a string allocated among the scan's transient
    # token strings; kept as is, those strings pin arenas of CPython's small-object
    # allocator that are otherwise free (27 MB on the bench corpus). A fresh interpreter,
    # so that the count is load_corpus's alone.
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    words = np.array([f"w{i:07d}" for i in range(60_000)])
    tokens = np.concatenate([words, rng.choice(words, 1_500_000)])  # every word ≥ once
    (tmp_path / "c.txt").write_text(" ".join(rng.permutation(tokens).tolist()))
    child = (
        "import os, re, sys\n"
        "from w2v_jax.corpus import load_corpus\n"
        f"vocab, corpus = load_corpus({str(tmp_path / 'c.txt')!r}, min_count=1)\n"
        "r, w = os.pipe(); os.dup2(w, 2); sys._debugmallocstats(); os.close(w); os.close(2)\n"
        "out = os.read(r, 1 << 20).decode()\n"
        "print(int(re.search(r'bytes in available blocks\\s*=\\s*([\\d,]+)', out)[1]"
        ".replace(',', '')))\n")
    free = int(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                              check=True).stdout)
    assert free < 8 << 20, f"{free / 2**20:.1f} MB of free small-object memory held"


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfthe cat the dog\nthe end\n")
    vocab, corpus = load_corpus(p, min_count=1)
    assert sorted(vocab.words) == ["cat", "dog", "end", "the"]
    assert vocab.counts[vocab.index()["the"]] == 3
