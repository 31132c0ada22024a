"""The CLI end to end: train on the embedded corpus, evaluate, and meet bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from gensim.models import KeyedVectors as GensimKV

from conftest import needs_bitwise_reproducibility
from w2v_jax.cli import main

FAST = ["--vector-size", "16", "--epochs", "1", "--batch-size", "512", "--no-progress"]


@pytest.fixture(scope="module")
def kjv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "kjv"
    assert main(["train", "--out", str(out), "--eval-each-epoch", *FAST]) == 0
    return out


def test_train_on_embedded_corpus_writes_a_complete_run(kjv_run):
    assert {p.name for p in kjv_run.iterdir()} >= {"vectors.bin", "vocab.txt", "config.json",
                                                    "metrics.jsonl"}
    g = GensimKV.load_word2vec_format(str(kjv_run / "vectors.bin"), binary=True)
    vocab = [line.split("\t") for line in (kjv_run / "vocab.txt").read_text().splitlines()]
    assert g.vector_size == 16 and len(g) == len(vocab) > 4000
    assert list(g.index_to_key[:3]) == [w for w, _ in vocab[:3]] == ["the", "and", "of"]
    assert np.all(np.isfinite(g.vectors))
    cfg = json.loads((kjv_run / "config.json").read_text())
    assert cfg["vector_size"] == 16 and cfg["sg"] == 1 and cfg["effective_alpha"] == 0.025
    records = [json.loads(line) for line in (kjv_run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "done" and records[-1]["words_per_sec"] > 0
    evals = [r for r in records if r.get("event") == "eval"]
    assert [r["epoch"] for r in evals] == [1] and evals[0]["analogy_answered"] > 0
    assert -1 <= evals[0]["wordsim"] <= 1
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)


def test_similar_and_eval_commands(kjv_run, capsys):
    assert main(["similar", str(kjv_run), "gold", "--topn", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all(len(line.split("\t")) == 2 for line in lines)
    assert main(["analogy", str(kjv_run), "man", "woman", "king", "--topn", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["eval", str(kjv_run / "vectors.bin"), "--method", "3cosadd", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    r = res["analogy"]["3cosadd"]
    assert r["total"] == 19544 and r["answered"] + r["oov"] == r["total"]


def _fails(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert match in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flags, match", [
    (["--vector-size", "0"], "vector_size must be a positive"),
    (["--window", "-2"], "window must be a positive"),
    (["--negative", "0"], "negative must be a positive"),
    (["--epochs", "0"], "epochs must be a positive"),
    (["--alpha", "0"], "alpha must be > 0"),
    (["--lanes", "0"], "lanes must be a positive"),
])
def test_bad_hyper_parameters(tmp_path, capsys, flags, match):
    _fails(capsys, ["train", "--out", str(tmp_path / "o"), *flags], match)
    assert not (tmp_path / "o" / "vectors.bin").exists()


@pytest.mark.parametrize("content, match", [
    (None, "does not exist"),
    (b"", "no words"),
    (b"a b c\n", "min_count"),
    (b"\xff\xfe bad bytes\n", "not valid UTF-8"),
])
def test_bad_corpus(tmp_path, capsys, content, match):
    corpus = tmp_path / "c.txt"
    if content is not None:
        corpus.write_bytes(content)
    _fails(capsys, ["train", "--corpus", str(corpus), "--out", str(tmp_path / "o")], match)
    assert not (tmp_path / "o" / "vectors.bin").exists()


def test_unwritable_out_and_finished_run(tmp_path, capsys, kjv_run):
    blocker = tmp_path / "file"
    blocker.write_text("")
    _fails(capsys, ["train", "--out", str(blocker / "sub")], "cannot write to output directory")
    _fails(capsys, ["train", "--out", str(kjv_run)], "already holds a finished run")


def test_unknown_word_and_missing_run(tmp_path, capsys, kjv_run):
    _fails(capsys, ["similar", str(kjv_run), "zzzz"], "not in the vocabulary")
    _fails(capsys, ["analogy", str(kjv_run), "zzz", "king", "yyy"], "words): 'zzz', 'yyy'")
    one = tmp_path / "one.txt"
    one.write_text("1 2\nsolo 1 2\n")
    _fails(capsys, ["similar", str(one), "solo"], "holds no word besides the query")
    _fails(capsys, ["eval", str(tmp_path / "nothing")], "does not exist")


def test_a_reader_that_goes_away_is_not_an_error(kjv_run, monkeypatch, capsys):
    # `w2v-jax similar RUN king --topn 3000 | head -1`: stdout's reader closes early.
    r, w = os.pipe()
    os.close(r)
    pipe = os.fdopen(w, "w")
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["similar", str(kjv_run), "king", "--topn", "3000"]) == 141
    monkeypatch.undo()
    pipe.close()  # stdout was pointed at /dev/null: its flush at exit cannot fail again
    assert capsys.readouterr().err == ""


def test_warnings_are_one_line(tmp_path, capsys):
    (tmp_path / "dup.txt").write_text("3 2\na 1 2\nb 3 4\na 1 2.1\n")
    assert main(["similar", str(tmp_path / "dup.txt"), "a"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("w2v-jax: warning: ") and "repeated word" in err
    assert len(err.strip().splitlines()) == 1  # no "file.py:103: UserWarning" and code line


def test_console_script_exit_code(tmp_path):
    # The installed entry point, as a user runs it: one line on stderr, exit 2.
    r = subprocess.run([sys.executable, "-m", "w2v_jax.cli", "train", "--out", str(tmp_path),
                        "--epochs", "0"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "w2v-jax: error: epochs must be a positive integer, got 0"


@needs_bitwise_reproducibility
def test_compilation_cache_is_kept_and_changes_nothing(tmp_path):
    # Two runs with one cache directory: the first fills it, the second loads the step
    # from it and must write the same vectors; W2V_JAX_XLA_CACHE=0 keeps nothing.
    import os

    def train(out, cache):
        env = dict(os.environ, W2V_JAX_XLA_CACHE=str(cache), W2V_JAX_CACHE=str(tmp_path))
        r = subprocess.run([sys.executable, "-m", "w2v_jax.cli", "train", "--out", str(out),
                            *FAST], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        return (out / "vectors.bin").read_bytes()

    cache = tmp_path / "xla"
    first = train(tmp_path / "a", cache)
    kept = list(cache.iterdir())
    assert kept, "no compiled program was kept"
    assert train(tmp_path / "b", cache) == first
    # The step was found, not compiled and kept again. (Small programs near the cache's
    # 0.3 s compile-time floor may be kept by one run and not the other on a loaded
    # machine: only the step's entries are compared.)
    steps = lambda: sorted(p.name for p in cache.iterdir() if "run_steps" in p.name)  # noqa: E731
    assert steps() == sorted(p.name for p in kept if "run_steps" in p.name) and steps()
    assert set(kept) <= set(cache.iterdir())
    train(tmp_path / "c", 0)
    assert not (tmp_path / "0").exists() and not (tmp_path / "xla" / "0").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "xla"]


def test_a_second_sigterm_is_not_announced_again_and_ctrl_c_still_aborts(capsys):
    import os
    import signal

    from w2v_jax.cli import _StopFlag

    stop = _StopFlag()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.signum == signal.SIGTERM
        assert capsys.readouterr().err.count("SIGTERM received") == 1
        import logging

        absl = logging.getLogger("absl")
        level = absl.level
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        # The aborted save's thread must not print its traceback through absl.
        assert absl.level > logging.CRITICAL
        absl.setLevel(level)
    finally:
        stop.restore()
