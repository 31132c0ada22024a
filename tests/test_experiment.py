"""The experiment runner: plans, runs (skipping and resuming), summaries, plots, scaling."""

import csv
import json

import jax
import numpy as np
import pytest

from conftest import planted_topics_text
from experiments.run import main as run_main
from w2v_jax import experiment as ex
from w2v_jax.errors import W2VError
from w2v_jax.scaling import loglog_slope, synthetic_vocab, time_per_pair

TOML = """
name = "tiny"
description = "two objectives"
seeds = [0, 1]
eval_each_epoch = true

[base]
vector_size = 8
window = 2
min_count = 1
sample = 0
epochs = 2
batch_size = 32
steps_per_call = 8

[[runs]]
name = "ns"
shared_negatives = 4

[[runs]]
name = "hs"
objective = "hs"

[sweep]
window = [1, 2]
"""


@pytest.fixture
def exp_file(tmp_path):
    (tmp_path / "c.txt").write_text(planted_topics_text())
    path = tmp_path / "tiny.toml"
    path.write_text(TOML.replace('name = "tiny"', f'name = "tiny"\ncorpus = "{tmp_path / "c.txt"}"'))
    return path


def test_expand_crosses_runs_sweep_and_seeds(exp_file):
    exp = ex.load_experiment(exp_file)
    specs = ex.expand(exp)
    assert len(specs) == 2 * 2 * 2
    assert specs[0].name == "ns__window=1__seed=0" and specs[0].config.window == 1
    assert {s.config.objective for s in specs} == {"ns", "hs"}
    assert {s.config.seed for s in specs} == {0, 1}
    # The command line replaces the file's sweep and seeds and can set any field.
    specs = ex.expand(exp, ex.parse_sweep(["vector_size=8,16"]), [7], {"epochs": 1})
    assert [(s.config.vector_size, s.config.seed, s.config.epochs) for s in specs][:2] == [
        (8, 7, 1), (16, 7, 1)]
    # A swept or shared setting that cannot act on a run leaves it as it is, trained once
    # (hs draws no negatives); one in the run's own table is an error.
    specs = ex.expand(exp, ex.parse_sweep(["negative=1,3"]), [7], {"sampler": "cdf"})
    assert [(s.name, s.config.negative, s.config.sampler) for s in specs] == [
        ("ns__negative=1__seed=7", 1, "cdf"), ("ns__negative=3__seed=7", 3, "cdf"),
        ("hs__seed=7", 5, "alias")]
    assert [s.unused for s in specs] == [(), (), ("negative", "sampler")]  # named in the log
    exp.runs[1]["negative"] = 3
    with pytest.raises(W2VError, match="run hs .*negative=3 applies to negative sampling"):
        ex.expand(exp)
    with pytest.raises(W2VError, match="'negatve' is not a config field"):
        ex.expand(exp, ex.parse_sweep(["negatve=1"]))
    with pytest.raises(W2VError, match="window must be a positive"):
        ex.expand(exp, ex.parse_sweep(["window=0"]))


def test_run_skip_resume_summary_and_plots(exp_file, tmp_path, capsys):
    out = tmp_path / "out"
    results_dir = tmp_path / "results"
    # A third run that diverges: recorded as failed, the others go on, exit status 1.
    exp_file.write_text(exp_file.read_text() + '\n[[runs]]\nname = "bad"\nalpha = 1e30\n'
                        'min_alpha = 1e30\nshared_negatives = 4\n')
    argv = [str(exp_file), "--out", str(out), "--sweep", "window=2"]
    assert run_main([*argv, "--results", str(results_dir)]) == 1
    names = [r["name"] for r in json.loads((out / "experiment.json").read_text())["runs"]]
    assert len(names) == 6
    assert all((out / n / "scores.json").exists() for n in names if not n.startswith("bad"))
    assert "training diverged" in json.loads((out / "bad__window=2__seed=0" / "failed.json").read_text())["error"]
    md = (out / "summary.md").read_text()
    assert "\n| ns window=2 | 2 |" in md and "\n| hs window=2 | 2 |" in md
    assert "At equal training time" in md and "Failed runs:" in md
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 2 and all(r["seeds"] == "2" for r in rows)
    assert all(float(r["words/s std"]) >= 0 and float(r["words/s"]) > 0 for r in rows)
    for png in ("loss.png", "scores_vs_epoch.png", "final_scores.png"):
        assert (out / png).stat().st_size > 10_000 and (results_dir / "tiny" / png).exists()
    # Finished runs are skipped; the failed ones are tried again.
    capsys.readouterr()
    assert run_main(argv) == 1
    assert capsys.readouterr().err.count("done already, skipped") == 4
    # An interrupted run (checkpoint, no vectors) is resumed, not restarted.
    victim = out / names[0]
    for f in ("scores.json", "vectors.bin"):
        (victim / f).unlink()
    assert run_main(argv) == 1
    err = capsys.readouterr().err
    assert f"1/6] {names[0]}: resuming" in err and "resuming from checkpoint step" in err
    assert (victim / "scores.json").exists()
    # The file changed since: refuse to mix old runs into new results.
    assert run_main([*argv, "--set", "epochs=1"]) == 2
    assert "with another config" in capsys.readouterr().err


def test_bad_experiment_files(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    assert run_main([str(bad)]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
    bad.write_text('name = "x"\nbogus = 1\n')
    assert run_main([str(bad)]) == 2
    assert "unknown key(s) bogus" in capsys.readouterr().err


@pytest.mark.parametrize("body, match", [
    ("seeds = 3", "seeds must be a list of integers"),
    ("base = 3", "base must be a table"),
    ("eval_each_epoch = \"false\"", "eval_each_epoch must be true or false"),
    ("equal_time_seconds = \"30\"", "equal_time_seconds must be a positive number"),
    ("corpus = 5", "corpus must be a string"),
    ("[runs]\nname = \"a\"", "runs must be an array of tables"),
    ("[sweep]\nwindow = 5", "sweep window must be a non-empty list"),
    ("[sweep]\nwindow = []", "sweep window must be a non-empty list"),
    ("[[runs]]\nname = 5", "run name 5 must be a non-empty directory name"),
    ("[[runs]]\nname = \"../../escaped\"", "run name '../../escaped' must be"),
    ("[[runs]]\nname = \"\"", "run name '' must be"),
    ("[scaling]\nvocab_size = [1000]", "scaling: unknown key"),
    ("[scaling]\nvocab_sizes = []", "vocab_sizes must list two or more"),
])
def test_bad_values_are_refused_before_anything_trains(tmp_path, capsys, body, match):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'name = "x"\n{body}\n')
    assert run_main([str(bad), "--out", str(tmp_path / "o")]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path.parent / "escaped").exists()


def test_bad_seeds_flag_is_one_line(exp_file, capsys):
    assert run_main([str(exp_file), "--seeds", "a,b"]) == 2
    assert "--seeds 'a,b': expected comma-separated integers" in capsys.readouterr().err
    assert run_main([str(exp_file), "--seeds", "1,1"]) == 2
    assert "two runs would train into hs__window=1__seed=1" in capsys.readouterr().err


def test_scaling_points_are_measured_again_when_the_settings_change(tmp_path, monkeypatch):
    import w2v_jax.scaling

    measured = []

    def fake_time(cfg, v, calls):
        measured.append((cfg.objective, v, cfg.vector_size))
        return 1e-6 * v ** (1.0 if cfg.objective == "softmax" else 0.1)

    monkeypatch.setattr(w2v_jax.scaling, "time_per_pair", fake_time)
    spec = {"vocab_sizes": [100, 1000], "objectives": ["softmax", "ns"]}
    text = ex.run_scaling(spec, {"vector_size": 8}, tmp_path, log=lambda m: None)
    assert len(measured) == 4 and "| log-log slope | 1.00 | 0.10 |" in text
    ex.run_scaling(spec, {"vector_size": 8}, tmp_path, log=lambda m: None)
    assert len(measured) == 4  # same settings: the points are reused
    ex.run_scaling(spec, {"vector_size": 16}, tmp_path, log=lambda m: None)
    assert len(measured) == 8 and measured[-1][2] == 16  # [base] changed: measured again
    # A base negative reaches the ns points only (softmax draws none): no error.
    ex.run_scaling(spec, {"vector_size": 16, "negative": 10}, tmp_path, log=lambda m: None)
    assert len(measured) == 12


def test_seed_spread_is_the_sample_sd():
    def result(seed, analogy):
        return {"name": f"a__seed={seed}", "group": "a", "varied": {"seed": seed},
                "config": {"objective": "ns", "sg": 1, "negative": 5, "window": 5,
                           "vector_size": 8},
                "scores": {"analogy": analogy, "wordsim": 0.5}, "done": {}, "progress": [],
                "evals": []}

    row = ex.summarise([result(0, 0.10), result(1, 0.20)])[0]
    mean, sd = row["analogy"]
    assert mean == pytest.approx(0.15) and sd == pytest.approx(0.0707107, rel=1e-5)


def test_cost_per_pair_grows_with_v_for_softmax_only():
    from w2v_jax.config import Config

    def cost(obj, v):
        cfg = Config(objective=obj, vector_size=16, window=2, batch_size=32, steps_per_call=2,
                     sample=0, min_count=1)
        return time_per_pair(cfg, v, calls=5)

    sizes = [1000, 32000]  # large enough that the softmax's O(V) work outweighs fixed costs
    # On the CPU, where the softmax's V-wide work is serial: a GPU does it in parallel and
    # its slope at these sizes is ~0.2 (H100, 2026-11-27).
    with jax.default_device(jax.devices("cpu")[0]):
        soft = [cost("softmax", v) for v in sizes]
        ns = [cost("ns", v) for v in sizes]
    assert loglog_slope(sizes, soft) > 0.5  # ~1 in theory; generous for a noisy machine
    assert loglog_slope(sizes, ns) < 0.35
    assert synthetic_vocab(10).counts.tolist()[:3] == [100, 50, 33]
    assert loglog_slope([1, 10, 100], [2, 20, 200]) == pytest.approx(1.0)
    assert np.isfinite(soft + ns).all()


def _one_finished_run(tmp_path):
    """An experiment of one tiny run, trained: (its TOML file, its directory)."""
    (tmp_path / "c.txt").write_text(planted_topics_text())
    toml = tmp_path / "one.toml"
    toml.write_text(f'name = "one"\ncorpus = "{tmp_path / "c.txt"}"\n[base]\nvector_size = 8\n'
                    'min_count = 1\nepochs = 1\nbatch_size = 32\nsteps_per_call = 8\n'
                    '[[runs]]\nname = "a"\n')
    out = tmp_path / "out"
    assert run_main([str(toml), "--out", str(out)]) == 0
    return toml, out


def test_an_unfinished_run_is_not_resumed_under_a_changed_config(tmp_path, capsys):
    # A killed (or failed) run resumes with its checkpoint's config: if the file changed
    # since, resuming would train the old settings and list the new ones.
    toml, out = _one_finished_run(tmp_path)
    for f in ("scores.json", "vectors.bin", "config.json"):  # as a kill leaves it
        (out / "a" / f).unlink()
    capsys.readouterr()
    assert run_main([str(toml), "--out", str(out), "--set", "vector_size=12"]) == 2
    err = capsys.readouterr().err
    assert "holds unfinished run a with another config" in err and "vector_size" in err
    assert not (out / "a" / "vectors.bin").exists()
    assert run_main([str(toml), "--out", str(out)]) == 0  # unchanged: resumed
    assert "resuming from checkpoint step" in capsys.readouterr().err


def test_equal_time_table_uses_the_trainers_clock_and_needs_evaluations():
    def result(name, elapsed, wall, evals):
        return {"name": name, "group": name, "varied": {},
                "done": {"elapsed": elapsed, "train_seconds": wall},
                "evals": [{"epoch": e, "words": 100 * e, "analogy": 0.1 * e, "wordsim": 0.5,
                           "elapsed": t} for e, t in evals]}

    fast = result("fast", 2.0, 9.0, [(1, 1.0), (2, 2.0)])  # wall-clock 9 s: evals took 7
    slow = result("slow", 4.0, 5.0, [(1, 2.0), (2, 4.0)])
    seeded = dict(slow, name="slow__window=2__seed=1", varied={"window": 2, "seed": 1})
    assert ex.at_equal_time([fast, seeded])[1][1]["run"] == "slow window=2 seed=1"  # as summary
    budget, rows = ex.at_equal_time([fast, slow])
    assert budget == 2.0
    assert [(r["run"], r["epochs done"]) for r in rows] == [("fast", 2), ("slow", 1)]
    assert ex.at_equal_time([result("a", 2.0, 3.0, []), result("b", 3.0, 3.0, [])]) == (0.0, [])


def test_set_takes_one_value_and_a_stop_exits_with_its_signal(exp_file, monkeypatch, capsys):
    import os
    import signal

    from w2v_jax.errors import Interrupted

    assert run_main([str(exp_file), "--set", "negative=3,15"]) == 2
    assert "one value per field; for several, use --sweep" in capsys.readouterr().err

    def stopped(*args, should_stop, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` sends the runner
        assert should_stop()
        raise Interrupted(8)

    monkeypatch.setattr(ex, "run_experiment", stopped)
    assert run_main([str(exp_file), "--out", str(exp_file.parent / "o")]) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM; run the same command again" in capsys.readouterr().err


def test_a_run_resumed_at_its_end_keeps_its_clock_and_a_changed_corpus_is_refused(tmp_path,
                                                                                 capsys):
    toml, out = _one_finished_run(tmp_path)
    first = ex.summarise(ex.load_results(out))[0]
    for f in ("scores.json", "vectors.bin", "config.json"):  # killed after the last checkpoint
        (out / "a" / f).unlink()
    assert run_main([str(toml), "--out", str(out)]) == 0  # nothing left to train
    again = ex.summarise(ex.load_results(out))[0]
    assert again["train s"][0] == pytest.approx(first["train s"][0], rel=0.05)
    assert again["words/s"][0] == pytest.approx(first["words/s"][0], rel=0.05)
    (tmp_path / "d.txt").write_text(planted_topics_text())
    capsys.readouterr()
    assert run_main([str(toml), "--out", str(out), "--corpus", str(tmp_path / "d.txt")]) == 2
    assert "holds run a on another corpus" in capsys.readouterr().err


def test_a_finished_run_with_a_stale_failure_and_damaged_files(tmp_path, capsys):
    """A failed.json that a lost lock race left in a run that then finished, a metrics
    line cut short and damaged scores: the run counts as finished, once, and is rescored."""
    toml, out = _one_finished_run(tmp_path)
    run = out / "a"
    (run / "failed.json").write_text('{"error": "another w2v-jax process (pid 1) ..."}\n')
    scores = json.loads((run / "scores.json").read_text())
    metrics = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(metrics[:-20] + "\n" + metrics)
    (run / "scores.json").write_text("garbage")
    capsys.readouterr()
    assert run_main([str(toml), "--out", str(out)]) == 0
    assert "Failed runs" not in (out / "summary.md").read_text()
    assert json.loads((run / "scores.json").read_text()) == scores  # scored again
    assert not (run / "failed.json").exists()
    (run / "metrics.jsonl").unlink()  # the scores stand without the curves
    assert len(ex.load_results(out)) == 1
    (run / "config.json").write_text("{")
    assert run_main([str(toml), "--out", str(out)]) == 2
    assert "config.json is damaged; delete" in capsys.readouterr().err


def test_a_run_another_process_trains_is_skipped_not_failed(tmp_path, monkeypatch, capsys):
    from w2v_jax.checkpoint import RunLock

    toml, out = _one_finished_run(tmp_path)
    (out / "a" / "scores.json").unlink()
    (out / "a" / "vectors.bin").unlink()
    with RunLock(out / "a"):
        capsys.readouterr()
        assert run_main([str(toml), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "another process is training it; skipped" in err and "(a); run the same" in err
    assert not (out / "a" / "failed.json").exists()


def test_a_run_out_of_memory_is_recorded_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    import w2v_jax.run

    real = w2v_jax.run.train_run

    def too_large(run_dir, config, *args, **kwargs):
        if config is not None and config.vector_size == 1000:
            raise MemoryError()
        return real(run_dir, config, *args, **kwargs)

    monkeypatch.setattr(w2v_jax.run, "train_run", too_large)
    (tmp_path / "c.txt").write_text(planted_topics_text())
    toml = tmp_path / "e.toml"
    toml.write_text(f'corpus = "{tmp_path / "c.txt"}"\n[base]\nmin_count = 1\nepochs = 1\n'
                    'batch_size = 32\n[[runs]]\nname = "big"\nvector_size = 1000\n'
                    '[[runs]]\nname = "small"\nvector_size = 8\n')
    assert run_main([str(toml), "--out", str(tmp_path / "o")]) == 1
    assert (tmp_path / "o" / "small" / "scores.json").exists()
    failed = json.loads((tmp_path / "o" / "big" / "failed.json").read_text())["error"]
    assert failed.startswith("out of memory (MemoryError); lower batch_size, window")


@pytest.mark.parametrize("flags, match", [
    (["--corpus", "/nonexistent/c.txt"], "corpus file /nonexistent/c.txt does not exist"),
    (["--corpus", "/"], "is not a regular file"),
    (["--corpus", "/dev/stdin"], "is not a regular file"),
    (["--results", "/proc/no"], "cannot write to output directory /proc/no/one"),
])
def test_bad_corpus_and_results_paths_are_one_line(tmp_path, capsys, flags, match):
    toml, out = _one_finished_run(tmp_path)
    capsys.readouterr()
    assert run_main([str(toml), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_an_unwritable_out_and_a_bad_experiment_name(tmp_path, capsys):
    toml, _ = _one_finished_run(tmp_path)
    capsys.readouterr()
    assert run_main([str(toml), "--out", "/proc/no"]) == 2
    assert "cannot write to experiment directory /proc/no" in capsys.readouterr().err
    toml.write_text(toml.read_text().replace('name = "one"', 'name = "../up"'))
    assert run_main([str(toml)]) == 2
    assert "name '../up' must be a relative path without '.' or '..'" in capsys.readouterr().err
    for bad in ("./", "a/.", "a//b", ""):
        toml.write_text(toml.read_text().replace(toml.read_text().split("\n")[0],
                                                 f'name = "{bad}"'))
        assert run_main([str(toml)]) == 2
        assert "must be a relative path" in capsys.readouterr().err
    toml.write_text(toml.read_text().replace(toml.read_text().split("\n")[0],
                                             'name = "ablations/one"'))
    assert run_main([str(toml), "--out", str(tmp_path / "nested")]) == 0  # nested is fine


def test_ctrl_c_outside_training_is_one_line(exp_file, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "run_experiment", interrupted)
    assert run_main([str(exp_file), "--out", str(exp_file.parent / "o")]) == 130
    assert capsys.readouterr().err.strip().endswith("experiments.run: interrupted")
