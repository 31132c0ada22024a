"""The benchmark's own helpers (benchmarks/compare_peers.py, memory_floor.py): the one row order every
peer is scored in, and the emulation of gensim corpus_file's per-worker schedule."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_bitwise_reproducibility
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
    assert cp.rank_order(str(path)) == (["top", "mid", "alpha", "zeta"], 35)


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


def _row(peer, seed, analogy, train_s):
    return {"peer": peer, "mode": "sg", "seed": seed, "epochs": 5, "train_s": train_s,
            "e2e_s": train_s + 1, "words_per_sec": 1e6, "peak_rss_mb": 100.0, "vocab": 10,
            "analogy": analogy, "wordsim": 0.5}


def test_summary_is_mean_and_sd_per_peer_over_seeds():
    rows = [_row("a", 1, 0.20, 10.0), _row("b", 1, 0.30, 20.0), _row("a", 2, 0.24, 14.0),
            _row("b", 2, 0.30, 20.0), {"peer": "a", "mode": "sg", "seed": 3, "epochs": 5,
                                       "error": "boom"}]
    lines = cp.summary(rows).splitlines()[2:]
    assert len(lines) == 2  # failed runs are left out of the means
    a = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert a[:3] == ["a", "sg", "2"]
    assert a[3] == "12.0 ± 2.8"  # train s: mean 12, sample sd 2.83
    assert a[6] == "—" and a[7] == "22.00 ± 2.83"  # no memory breakdown; analogy in points
    b = [c.strip() for c in lines[1].split("|")[1:-1]]
    assert b[7] == "30.00 ± 0.00"


def test_table_has_a_seed_column_only_with_several_seeds():
    row = _row("a", 7, 0.2, 10.0)
    one, several = cp.table([row]).splitlines(), cp.table([row], seeds=True).splitlines()
    assert "seed" not in one[0] and "| seed |" in several[0]
    assert several[2].startswith("| a | sg | 7 | 5 |")
    assert one[1].count("---") == 11 and several[1].count("---") == 12


@needs_bitwise_reproducibility
def test_w2v_jax_child_trains_with_the_seed_it_is_given(tmp_path):
    corpus = tmp_path / "c.txt"
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    corpus.write_text(" ".join(rng.choice(words, 3000)) + "\n")
    out = {}
    for name, seed in [("s1", 1), ("s2", 2), ("s1b", 1)]:
        path = tmp_path / f"{name}.bin"
        res = cp.run_w2v_jax(str(corpus), "sg", 1, str(path), "alias", seed=seed)
        assert res["config"]["seed"] == seed
        out[name] = KeyedVectors.load_word2vec_format(str(path), binary=True).vectors
    np.testing.assert_array_equal(out["s1"], out["s1b"])
    assert not np.allclose(out["s1"], out["s2"])


def test_merge_puts_runs_of_different_seeds_in_one_summary(tmp_path):
    import json

    meta = {"date": "d", "machine": "m", "corpus": "/x/c.txt.gz", "epochs": 5}
    first = [_row("a", 1, 0.20, 10.0) | {"analogy_answered": 9}]
    older = [{k: v for k, v in _row("a", 2, 0.24, 14.0).items() if k != "seed"}
             | {"analogy_answered": 9}]  # a run from before seeds were recorded: seed 1
    paths = []
    for i, rows in enumerate([first, older]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps({"meta": dict(meta, date=f"d{i}"), "rows": rows}))
    cp.merge_main([str(p) for p in paths], tmp_path / "out")
    md = (tmp_path / "out" / "peers.md").read_text()
    assert "Measured d0, d1" in md and "| a | sg | 2 | 12.0 ± 2.8 |" in md  # 2 runs
    assert (tmp_path / "out" / "peers.png").stat().st_size > 0
    merged = json.loads((tmp_path / "out" / "peers.json").read_text())
    assert [r["seed"] for r in merged["rows"]] == [1, 1]


@pytest.mark.parametrize("content", [None, "not json", '{"rows": []}'])
def test_merge_refuses_what_is_not_a_saved_run_in_one_line(tmp_path, content):
    path = tmp_path / "peers.json"
    if content is not None:
        path.write_text(content)
    out = subprocess.run([sys.executable, str(_PATH), "--merge", str(path), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("compare_peers: cannot merge") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_run_watched_sees_the_childs_anonymous_and_file_memory(monkeypatch):
    monkeypatch.syspath_prepend(str(_PATH.parent))
    import peak_memory

    child = ("import time\n"
             "x = bytearray(300 << 20)\n"
             "for i in range(0, len(x), 4096): x[i] = 1\n"
             "time.sleep(0.5); print('done')")
    r, peaks = peak_memory.run_watched([sys.executable, "-c", child])
    assert r.returncode == 0 and r.stdout == "done\n"
    assert 290 < peaks["peak_anon_mb"] < 400
    assert 0 < peaks["peak_file_mb"] < 100  # the interpreter's own code, not the bytearray


def test_table_shows_a_dash_for_runs_without_the_memory_breakdown():
    old, new = _row("a", 1, 0.2, 10.0), _row("b", 1, 0.3, 20.0) | {"peak_anon_mb": 64.4}
    lines = cp.table([old, new]).splitlines()
    assert lines[0].count("|") == lines[2].count("|") == lines[3].count("|")
    assert "| 100 | — | 10 |" in lines[2] and "| 100 | 64 | 10 |" in lines[3]
    assert "| — |" in cp.summary([old, new]).splitlines()[2]


def test_missing_scores_are_shown_as_n_a_not_a_crash(tmp_path):
    # A peer that answers no analogy question, or covers under two WordSim pairs, has None
    # scores; the table, the summary and the plot used to raise on them.
    rows = [_row("a", s, None, 10.0 + s) | {"wordsim": None, "analogy_answered": 0}
            for s in (1, 2)]
    assert cp.table(rows).splitlines()[2].endswith("| n/a | n/a |")
    assert cp.summary(rows).splitlines()[2].endswith("| n/a | n/a |")
    cp.write_results(rows, {"date": "d", "machine": "m", "corpus": "c.txt", "epochs": 1},
                     tmp_path)
    assert (tmp_path / "peers.png").stat().st_size > 0


@pytest.mark.parametrize("args, says", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--corpus", "{tmp}"], "is a directory"),
    (["--corpus", "{tmp}/empty.txt"], "cannot use corpus"),
    (["--corpus", "{tmp}/cut.gz"], "cannot use corpus"),
])
def test_bad_race_arguments_fail_in_one_line_and_leave_no_temp_dir(tmp_path, args, says,
                                                                   monkeypatch):
    import gzip

    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"some words " * 100)[:20])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    out = subprocess.run([sys.executable, str(_PATH), *[a.format(tmp=tmp_path) for a in args],
                          "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode != 0 and says in out.stderr and "Traceback" not in out.stderr
    assert list(scratch.iterdir()) == []  # the decompressed corpus is not left behind


def test_merge_refuses_the_same_file_twice(tmp_path):
    path = tmp_path / "peers.json"
    path.write_text('{"meta": {"corpus": "c", "epochs": 1, "date": "d"}, "rows": []}')
    out = subprocess.run([sys.executable, str(_PATH), "--merge", str(path),
                          str(tmp_path / "." / "peers.json"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "same file twice" in out.stderr


def test_memory_floor_measures_each_stage_in_its_own_process(tmp_path):
    # Each stage is a fresh child: peaks grow from the bare interpreter to JAX to a
    # compiled step, which a child that skipped its stage's work would not show.
    script = _PATH.parent / "memory_floor.py"
    r = subprocess.run([sys.executable, str(script), "--vocab-size", "40", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    peaks = {row["stage"]: row["peak_rss_mb"]
             for row in json.loads((tmp_path / "memory_floor.json").read_text())["rows"]}
    assert peaks["python"] < peaks["jax"] < peaks["w2v-jax cbow"]
    assert peaks["jax"] < peaks["w2v-jax sg"]
    assert "| w2v-jax sg |" in (tmp_path / "memory_floor.md").read_text()
