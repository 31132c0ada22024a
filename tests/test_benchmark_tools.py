"""The benchmark's own helpers (benchmarks/compare_peers.py): the one row order every
peer is scored in, and the emulation of gensim corpus_file's per-worker schedule."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2v_jax import Config
from w2v_jax.vectors import KeyedVectors

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_peers.py"
_spec = importlib.util.spec_from_file_location("compare_peers", _PATH)
cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cp)


def test_rank_order_is_count_then_word(tmp_path, monkeypatch):
    # "zeta" is seen first but ties with "alpha": the tie goes by word, not by position.
    text = "zeta alpha mid top top top mid " * 5
    path = tmp_path / "c.txt"
    path.write_text(text.strip() + "\n")
    monkeypatch.setitem(cp.HYPER, "min_count", 1)
    assert cp.rank_order(str(path)) == ["top", "mid", "alpha", "zeta"]


def test_in_order_moves_rows_with_their_words():
    rng = np.random.default_rng(0)
    kv = KeyedVectors(["b", "</s>", "a", "c"], rng.normal(size=(4, 3)))
    out = cp.in_order(kv, ["a", "b", "c", "d"])
    assert out.index_to_key == ["a", "b", "c", "</s>"]  # "d" absent, "</s>" unranked: last
    for w in kv.index_to_key:
        np.testing.assert_array_equal(out[w], kv[w])


@pytest.mark.parametrize("epoch, progress, done", [
    (0, 0.0, 0.0), (0, 0.25, 0.125), (0, 0.5, 0.25), (0, 1.0, 0.5), (4, 0.999, 4.4995)])
def test_corpus_file_schedule_two_workers(epoch, progress, done):
    # gensim: alpha − (alpha − min_alpha)·(epoch + worker words / epoch words)/epochs,
    # each of 2 workers covering half the epoch; read in 2 lanes side by side, each has
    # read `progress` of its half.
    cfg = Config(alpha=0.025, min_alpha=1e-4, epochs=5)
    lr = cp.corpus_file_schedule(2)(cfg, epoch, np.array([progress]))
    np.testing.assert_allclose(lr, [0.025 - (0.025 - 1e-4) * done / 5], rtol=1e-5)


def test_peak_rss_is_the_childs_own(tmp_path):
    # A parent at ~400 MB starts a child: ru_maxrss would report the parent's peak there.
    bench = str(_PATH.parent)
    child = f"import sys; sys.path.insert(0, {bench!r}); import peak_memory; print(peak_memory.peak_rss_mb())"
    parent = ("import subprocess, sys\n"
              "x = bytearray(400 << 20)\n"
              "for i in range(0, len(x), 4096): x[i] = 1\n"
              f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True,"
              " text=True, check=True).stdout)")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True)
    assert 1 < float(out.stdout) < 200
