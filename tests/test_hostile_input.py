"""Hostile input, through the CLI as a user meets it: one line ``w2v-jax: error: ...``,
exit 2, no traceback, no vectors left behind. (Divergence and corrupt checkpoints are
in test_checkpoint.py.)"""

import bz2
import gzip
import lzma
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import bitwise_reproducible
from w2v_jax import Config, load_corpus, train
from w2v_jax.cli import main
from w2v_jax.errors import W2VError

FAST = ["--vector-size", "8", "--epochs", "1", "--no-progress"]


def _fails(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("w2v-jax: error: "), err
    assert match in lines[0], err
    assert "Traceback" not in err


def _garbage():
    return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("case, content, flags, match", [
    ("empty file", b"", [], "has no words (empty or whitespace only)"),
    ("whitespace only", b" \n\t\r\n   \n", [], "has no words (empty or whitespace only)"),
    ("a single word", b"hello\n", ["--min-count", "1"], "fewer than 2 in-vocabulary words"),
    ("every word below min_count", b"a b c d a b\n", ["--min-count", "3"], "lower --min-count"),
    ("binary garbage", _garbage(), [], "is not valid UTF-8 (bad byte at offset"),
    ("latin-1 text", "caf\xe9 cr\xe8me\n".encode("latin-1"), [], "iconv"),
    ("truncated gzip", gzip.compress(b"a b c " * 5000, mtime=0)[:60], [], "could not read corpus"),
    ("truncated bzip2", bz2.compress(b"a b c " * 5000)[:-10], [], "could not read corpus"),
    ("truncated xz", lzma.compress(b"a b c " * 5000)[:-10], [], "could not read corpus"),
    ("zstd", b"\x28\xb5\x2f\xfd" + bytes(60), [], "zstd-compressed"),
    ("one word per line", b"a\nb\nc\n" * 100, ["--min-count", "1"], "no line of the corpus has 2"),
])
def test_bad_corpus_content(tmp_path, capsys, case, content, flags, match):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    out = tmp_path / "run"
    _fails(capsys, ["train", "--corpus", str(corpus), "--out", str(out), *FAST, *flags], match)
    assert not (out / "vectors.bin").exists()


def test_bad_corpus_paths(tmp_path, capsys, monkeypatch):
    out = ["--out", str(tmp_path / "run"), *FAST]
    _fails(capsys, ["train", "--corpus", str(tmp_path / "missing.txt"), *out], "does not exist")
    _fails(capsys, ["train", "--corpus", str(tmp_path), *out], "is a directory")
    locked = tmp_path / "locked.txt"
    locked.write_text("a b c\n")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make the check see what a user would
        monkeypatch.setattr("w2v_jax.corpus.os.access", lambda p, mode: False)
    _fails(capsys, ["train", "--corpus", str(locked), *out], "is not readable")


def test_a_one_gigabyte_file_without_line_breaks_in_bounded_memory(tmp_path):
    # 1 GiB with no newline and no whitespace (sparse: NUL bytes, no disk used). The
    # reader must give up after a bounded prefix instead of buffering the "word".
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from this (large) process.
    driver = ("import sys\nfrom w2v_jax.cli import main\ncode = main(sys.argv[1:])\n"
              "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
              "print('peak_kb', hwm.split()[1], file=sys.stderr)\nsys.exit(code)\n")
    r = subprocess.run([sys.executable, "-c", driver, "train", "--corpus", str(big),
                        "--out", str(tmp_path / "run"), "--no-progress"],
                       capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert lines[0].startswith("w2v-jax: error: ") and "no whitespace" in lines[0]
    peak_mb = int(lines[-1].split()[1]) / 1024
    assert peak_mb < 400, peak_mb  # the CLI with JAX loaded takes ~150 MB; 1 GiB cannot fit


def test_one_huge_line_crlf_and_tabs_train_like_plain_text(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in rng.integers(0, 30, 6000)]
    lines = [" ".join(words[i:i + 20]) for i in range(0, 6000, 20)]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(lines) + "\n")
    crlf_tabs = tmp_path / "crlf.txt"
    crlf_tabs.write_bytes(("\r\n".join(" \t".join(line.split(" ")) for line in lines)
                           + "\r\n").encode())
    cfg = Config(vector_size=8, window=3, min_count=1, sample=0, epochs=1, batch_size=32,
                 shared_negatives=4, steps_per_call=8)
    results = []
    for path in (plain, crlf_tabs):
        vocab, corpus = load_corpus(path, min_count=1)
        results.append((vocab.words, np.asarray(train(cfg, vocab, corpus).w_in)))
    assert results[0][0] == results[1][0]
    if bitwise_reproducible():
        np.testing.assert_array_equal(results[0][1], results[1][1])
    else:  # same ids and draws; only the order of a GPU's atomic adds differs
        np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-3)
    # All on one 6000-word line: one sentence, every word kept.
    one_line = tmp_path / "one.txt"
    one_line.write_text(" ".join(words))
    vocab, corpus = load_corpus(one_line, min_count=1)
    assert corpus.raw_words == 6000 and corpus.sentence_lengths.tolist() == [6000]


@pytest.mark.parametrize("flags, match", [
    (["--window", "abc"], "argument --window: invalid int value: 'abc'"),
    (["--alpha", "fast"], "argument --alpha: invalid float value: 'fast'"),
    (["--window", "-2"], "window must be a positive integer, got -2"),
    (["--sample", "-1"], "sample must be >= 0"),
    (["--min-alpha", "1"], "min_alpha (1.0) must not exceed alpha (0.025)"),
    (["--batch-size", "100", "--shared-negatives", "8"], "must be a multiple of shared_negatives"),
    (["--sampler", "magic"], "invalid choice: 'magic'"),
    (["--checkpoint-every-words", "0"], "--checkpoint-every-words must be positive"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints must be at least 1"),
    (["--checkpoint-every-minutes", "nan"], "--checkpoint-every-minutes must be positive"),
    (["--ns-exponent", "nan"], "ns_exponent must be a finite number"),
    (["--init-scale", "inf"], "init_scale must be a finite number"),
    (["--seed", "-1"], "seed must be in 0 .. 2**63 - 1"),
    (["--seed", str(10**23)], "seed must be in 0 .. 2**63 - 1"),
    (["--corpus", ""], "--corpus is empty"),
    (["--num-processes", "2", "--process-id", "0"], "need --coordinator"),
    (["--window", "257"], "window must be at most 256"),
    (["--sg", "0", "--sg-negatives", "pair"], "sg_negatives='pair' applies to skip-gram only"),
    (["--cbow-update", "exact"], "cbow_update='exact' applies to CBOW only"),
    (["--objective", "hs", "--negative", "10"], "negative=10 applies to negative sampling"),
    (["--lowercase"], "--lowercase applies to --dataset only"),
    (["--text-column", "body"], "--text-column applies to --dataset only"),
    (["--num-proc", "0"], "--num-proc applies to --dataset only"),  # 0 is falsy, still given
    (["--alpha", "1e308"], "alpha must be at most 3.4e+38"),
    (["--coordinator", "localhost:1", "--num-processes", "0", "--process-id", "0"],
     "--num-processes must be at least 1"),
    (["--coordinator", "bad", "--num-processes", "1", "--process-id", "0"], "HOST:PORT"),
    (["--coordinator", "localhost:abc", "--num-processes", "1", "--process-id", "0"],
     "HOST:PORT"),
    (["--coordinator", ":1234", "--num-processes", "1", "--process-id", "0"], "HOST:PORT"),
    (["--coordinator", "h:70000", "--num-processes", "1", "--process-id", "0"], "HOST:PORT"),
    (["--coordinator", "h:\u00b2", "--num-processes", "1", "--process-id", "0"], "HOST:PORT"),
])
def test_bad_hyper_parameters(tmp_path, capsys, flags, match):
    _fails(capsys, ["train", "--out", str(tmp_path / "run"), *FAST, *flags], match)
    assert not (tmp_path / "run" / "vectors.bin").exists()


def test_resume_with_overwrite_is_refused_not_ignored(tmp_path, capsys):
    _fails(capsys, ["train", "--resume", str(tmp_path), "--overwrite"], "pass one of them")


@pytest.mark.parametrize("error, shown", [
    (MemoryError("Unable to allocate 95.4 GiB for an array with shape (256, 100000010)"),
     "Unable to allocate 95.4 GiB for an array with shape (256, 100000010)"),
    (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 85.3GiB.\nmore"),
     "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 85.3GiB."),
    (MemoryError(), "MemoryError"),  # no message at all
])
def test_running_out_of_memory_is_reported_as_bad_input(tmp_path, capsys, monkeypatch, error,
                                                        shown):
    # A step too large for the machine (--batch-size 100000000 on this machine raised the
    # MemoryError above; a GPU raises XLA's RESOURCE_EXHAUSTED): one line naming the flags.
    import w2v_jax.run

    def too_large(*args, **kwargs):
        raise error

    monkeypatch.setattr(w2v_jax.run, "train_run", too_large)
    _fails(capsys, ["train", "--out", str(tmp_path / "run"), *FAST],
           f"out of memory ({shown}); lower --batch-size")


def test_config_values_of_the_wrong_type():
    with pytest.raises(W2VError, match="window must be an integer, got '5'"):
        Config.from_dict({"window": "5"})
    with pytest.raises(W2VError, match="alpha must be a number or None, got 'x'"):
        Config.from_dict({"alpha": "x"})
    with pytest.raises(W2VError, match="unknown config field"):
        Config.from_dict({"windw": 5})


def test_empty_run_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fails(capsys, ["train", "--out", "", *FAST], "--out is empty")
    _fails(capsys, ["train", "--resume", "", "--no-progress"], "--resume is empty")
    assert list(tmp_path.iterdir()) == []


def test_export_to_a_path_that_cannot_be_written(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("a b c d e f a b c d e f\n" * 50)
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(tmp_path / "c.txt"), "--out", str(run), *FAST,
                 "--min-count", "1"]) == 0
    capsys.readouterr()
    _fails(capsys, ["export", str(run), str(tmp_path)], "cannot write vectors to")
    _fails(capsys, ["export", str(run), str(tmp_path / "no" / "v.bin")], "No such file")
    assert not (tmp_path.parent / (tmp_path.name + ".tmp")).exists()


def test_bad_vectors_files(tmp_path, capsys):
    bad_header = tmp_path / "header.txt"
    bad_header.write_text("this is not a header\nking 0.1 0.2\n")
    _fails(capsys, ["eval", str(bad_header)], "bad header")
    good = tmp_path / "good.txt"
    good.write_text("3 2\nking 0.1 0.2\nqueen 0.2 0.1\nman 0.3 0.3\n")
    truncated = tmp_path / "cut.txt"
    truncated.write_text("3 2\nking 0.1 0.2\nqueen 0.2\n")
    _fails(capsys, ["similar", str(truncated), "king"], "truncated or malformed")
    _fails(capsys, ["similar", str(truncated), "king"], "entry 2 of 3")
    _fails(capsys, ["similar", str(good), "nobody"], "not in the vocabulary")
    huge = tmp_path / "huge.txt"  # a header promising 36 TiB: refused before allocating
    huge.write_text("99999999999 100\nking 0.1\n")
    _fails(capsys, ["similar", str(huge), "king"], "promises 99,999,999,999 vectors")
    zeros = tmp_path / "zeros.bin"  # no newline at all: the message stays one short line
    zeros.write_bytes(bytes(100_000))
    code = main(["similar", str(zeros), "king"])
    assert code == 2 and len(capsys.readouterr().err) < 400
    _fails(capsys, ["similar", str(tmp_path / "none.bin"), "king"], "does not exist")


def test_a_run_that_fails_before_writing_leaves_no_empty_out_dir(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    out = tmp_path / "new" / "run"
    _fails(capsys, ["train", "--corpus", str(tmp_path / "empty.txt"), "--out", str(out), *FAST],
           "has no words")
    assert not out.exists()
    out.mkdir()  # the user's own directory stays, empty or not
    _fails(capsys, ["train", "--corpus", str(tmp_path / "empty.txt"), "--out", str(out), *FAST],
           "has no words")
    assert out.is_dir()


def test_a_failed_run_leaves_a_new_out_dir_that_another_process_holds(tmp_path):
    import fcntl

    from w2v_jax.checkpoint import LOCK
    from w2v_jax.cli import _remove_if_abandoned

    out = tmp_path / "run"
    out.mkdir()
    with open(out / LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process training there
        _remove_if_abandoned(out)
        assert (out / LOCK).exists()
    _remove_if_abandoned(out)  # released: nobody trains there
    assert not out.exists()


def test_a_flag_refused_once_training_starts_keeps_the_old_run_and_leaves_no_stub(tmp_path,
                                                                                  capsys):
    # --devices is checked against the devices inside the trainer, after the corpus was
    # read: --overwrite had already deleted the old run, and a new --out kept an empty
    # checkpoints/ and metrics.jsonl that blocked the corrected command.
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c d e f a b c d e f\n" * 50)
    run = ["train", "--corpus", str(corpus), "--min-count", "1", *FAST]
    out = tmp_path / "run"
    assert main([*run, "--out", str(out)]) == 0
    before = (out / "vectors.bin").read_bytes()
    capsys.readouterr()
    assert main([*run, "--out", str(out), "--overwrite", "--devices", "64"]) == 2
    err = capsys.readouterr().err
    assert "--devices 64" in err and "keeps the run it held before" in err
    assert (out / "vectors.bin").read_bytes() == before
    assert (out / "checkpoints").is_dir() and not (out / ".replaced").exists()
    fresh = tmp_path / "fresh"
    assert main([*run, "--out", str(fresh), "--devices", "64"]) == 2
    assert not fresh.exists()
    assert main([*run, "--out", str(fresh)]) == 0  # the corrected command
    assert main([*run, "--out", str(out), "--overwrite"]) == 0  # and a real overwrite
    assert not (out / ".replaced").exists() and (out / "vectors.bin").read_bytes() != b""


def test_resume_refuses_a_dataset_instead_of_ignoring_it(tmp_path, capsys):
    _fails(capsys, ["train", "--resume", str(tmp_path / "run"), "--dataset", "x.txt",
                    "--lowercase"], "--resume continues on the checkpoint's dataset")
