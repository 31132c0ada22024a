"""Checkpoints: exact resume after a stop, a SIGKILL mid-run and mid-save; corrupt
checkpoints; the run lock; divergence keeps the last good checkpoint."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_bitwise_reproducibility, planted_topics_text
from w2v_jax.checkpoint import CHECKPOINTS, CORRUPT, RunLock, checkpoint_steps, restore_latest
from w2v_jax.cli import main
from w2v_jax.config import Config
from w2v_jax.errors import Interrupted, W2VError
from w2v_jax.run import REPLACED, CheckpointOptions, train_run

HYPER = dict(vector_size=8, window=3, min_count=1, sample=0, batch_size=32,
             shared_negatives=4, steps_per_call=8, epochs=2, seed=3)
FLAGS = ["--vector-size", "8", "--window", "3", "--min-count", "1", "--sample", "0",
         "--batch-size", "32", "--shared-negatives", "4", "--steps-per-call", "8",
         "--epochs", "2", "--seed", "3", "--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "topics.txt"
    p.write_text(planted_topics_text(n_lines=1500))  # 30k words: ~120 device calls an epoch
    return p


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """An uninterrupted run's vectors.bin bytes."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train_run(out, Config(**HYPER), corpus, checkpoints=CheckpointOptions(enabled=False),
              log=lambda m: None)
    return (out / "vectors.bin").read_bytes()


def _stop_after(n_calls):
    """A should_stop that asks to stop after the n-th device call."""
    polls = iter(range(1, 1 << 30))
    return lambda: next(polls) >= n_calls


@needs_bitwise_reproducibility
def test_stop_writes_a_checkpoint_and_resume_is_bit_identical(corpus, reference, tmp_path):
    out = tmp_path / "run"
    ck = CheckpointOptions(every_words=5000, keep=2)
    with pytest.raises(Interrupted) as stopped:
        train_run(out, Config(**HYPER), corpus, checkpoints=ck, should_stop=_stop_after(150),
                  log=lambda m: None)
    assert stopped.value.step == 150 * HYPER["steps_per_call"]  # a checkpoint at the stop
    assert not (out / "vectors.bin").exists()
    assert len(list((out / CHECKPOINTS).iterdir())) == 2  # only the last k are kept
    summary = train_run(out, None, resume=True, checkpoints=ck, log=lambda m: None)
    assert summary["resumed_from"] == stopped.value.step
    assert (out / "vectors.bin").read_bytes() == reference


def test_unfinished_run_needs_resume_or_overwrite(corpus, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(3), log=lambda m: None)
    with pytest.raises(W2VError, match="unfinished run.*--resume"):
        train_run(out, Config(**HYPER), corpus, log=lambda m: None)
    with pytest.raises(W2VError, match="--epochs 5 differ"):
        train_run(out, None, resume=True, resume_expect={"epochs": 5}, log=lambda m: None)
    with pytest.raises(W2VError, match="--alpha 0.03 differ"):
        train_run(out, None, resume=True, resume_expect={"alpha": 0.03}, log=lambda m: None)
    with pytest.raises(W2VError, match="nothing to resume"):
        train_run(tmp_path / "empty", None, resume=True, log=lambda m: None)
    # The corpus changed under the checkpoint: refuse rather than train on other data.
    corpus2 = tmp_path / "other.txt"
    corpus2.write_text(planted_topics_text(seed=1, n_lines=1500))
    with pytest.raises(W2VError, match="not .*other.txt"):
        train_run(out, None, corpus2, resume=True, log=lambda m: None)


def _three_checkpoints(corpus, tmp_path):
    """A run stopped after three checkpoints: (its directory, their steps, oldest first)."""
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(40),
                  checkpoints=CheckpointOptions(every_words=5000, keep=3), log=lambda m: None)
    steps = sorted(int(p.name) for p in (out / CHECKPOINTS).iterdir())
    assert len(steps) == 3
    return out, steps


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(corpus, tmp_path):
    out, steps = _three_checkpoints(corpus, tmp_path)
    # Flip bytes in every data file of the newest checkpoint.
    for f in (out / CHECKPOINTS / str(steps[-1]) / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 64 and "ocdbt.process" in str(f.parent):
            data = bytearray(f.read_bytes())
            data[len(data) // 2: len(data) // 2 + 16] = b"\xff" * 16
            f.write_bytes(bytes(data))
    warnings = []
    got = restore_latest(out / CHECKPOINTS, warn=warnings.append)
    assert got.step == steps[-2]
    assert len(warnings) == 1 and f"{steps[-1]} is unusable" in warnings[0]
    # Truncate the other two: none usable is a clear error.
    for step in steps[:-1]:
        for f in (out / CHECKPOINTS / str(step)).rglob("*"):
            if f.is_file() and f.stat().st_size > 64:
                f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(W2VError, match="no usable checkpoint"):
        restore_latest(out / CHECKPOINTS, warn=warnings.append)


def test_a_damaged_data_position_is_caught_by_the_metadata_checksum(corpus, tmp_path):
    # Valid JSON still, so only a checksum sees it: the run resumed at the wrong block.
    import json

    out, steps = _three_checkpoints(corpus, tmp_path)
    [meta_file] = [f for f in (out / CHECKPOINTS / str(steps[-1]) / "meta").rglob("*")
                   if f.is_file() and b'"position"' in f.read_bytes()]
    meta = json.loads(meta_file.read_text())
    meta["position"]["block"] -= 1
    meta_file.write_text(json.dumps(meta))
    warnings = []
    got = restore_latest(out / CHECKPOINTS, warn=warnings.append)
    assert got.step == steps[-2]
    assert "metadata does not match its saved checksum" in warnings[0]


def test_resume_past_a_corrupt_checkpoint_sets_it_aside_and_saves_again(corpus, tmp_path):
    """Orbax saves no step at or below the latest it finds: left in place, the corrupt
    newest checkpoint once made every later save a silent no-op (reported as saved)."""
    out = tmp_path / "run"
    ck = CheckpointOptions(every_words=5000, keep=3)
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(60), checkpoints=ck,
                  log=lambda m: None)
    steps = checkpoint_steps(out / CHECKPOINTS)
    for f in (out / CHECKPOINTS / str(steps[0]) / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 64 and "ocdbt.process" in str(f.parent):
            f.write_bytes(f.read_bytes()[:32] + b"\xff" * (f.stat().st_size - 32))
    logs = []
    with pytest.raises(Interrupted) as stopped:  # stop before reaching the corrupt step
        train_run(out, None, resume=True, checkpoints=ck, should_stop=_stop_after(5),
                  log=logs.append)
    assert (out / CORRUPT / str(steps[0])).is_dir()
    assert any("moved the unusable checkpoint" in m for m in logs)
    assert stopped.value.step < steps[0]
    assert checkpoint_steps(out / CHECKPOINTS)[0] == stopped.value.step  # really saved
    assert restore_latest(out / CHECKPOINTS).step == stopped.value.step


def test_overwrite_keeps_the_old_run_until_the_new_input_is_read(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *FLAGS]) == 0
    before = (out / "vectors.bin").read_bytes()
    for bad in (["--corpus", str(tmp_path / "typo.txt")], ["--min-count", "1000000"]):
        args = ["train", "--corpus", str(corpus), "--out", str(out), *FLAGS, "--overwrite", *bad]
        assert main(args) == 2
        assert (out / "vectors.bin").read_bytes() == before
        assert restore_latest(out / CHECKPOINTS) is not None
    capsys.readouterr()


def test_overwrite_removes_the_old_run_once_the_new_one_trains(corpus, tmp_path):
    """The replaced run is not given back once training has begun, so it is not kept
    (on disk) for the whole new run, nor left behind when that run is stopped."""
    out = tmp_path / "run"
    train_run(out, Config(**HYPER), corpus, log=lambda m: None)
    seen = []
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, overwrite=True, should_stop=_stop_after(3),
                  on_progress=lambda p: seen.append((out / REPLACED).exists()),
                  log=lambda m: None)
    assert seen and not any(seen)
    assert not (out / REPLACED).exists() and not (out / "vectors.bin").exists()


def test_a_killed_overwrite_that_saved_nothing_gives_the_old_run_back(corpus, tmp_path, capsys):
    """Killed after setting the old run aside and before its first checkpoint, --overwrite
    left it in .replaced, where the next --overwrite would have deleted it."""
    out = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *FLAGS]) == 0
    before = (out / "vectors.bin").read_bytes()
    from w2v_jax.run import _set_old_run_aside

    _set_old_run_aside(out)  # as the killed run left it: the old run aside, a new start
    (out / CHECKPOINTS).mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 0}\n')
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "holds the run it was replacing again" in capsys.readouterr().err
    assert (out / "vectors.bin").read_bytes() == before and not (out / REPLACED).exists()
    assert '{"epoch": 0}' not in (out / "metrics.jsonl").read_text()
    # Killed while moving the old run aside: the vectors moved, its checkpoints not yet.
    (out / REPLACED).mkdir()
    (out / "vectors.bin").rename(out / REPLACED / "vectors.bin")
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *FLAGS]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert (out / "vectors.bin").read_bytes() == before and not (out / REPLACED).exists()
    # A deletion of the set-aside run cut short is finished, never put back.
    (out / ".replaced.discard").mkdir()
    (out / ".replaced.discard" / "vocab.txt").write_text("stale\n")
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert not (out / ".replaced.discard").exists() and (out / "vocab.txt").read_text() != "stale\n"


def test_eval_each_epoch_goes_on_after_a_resume(corpus, tmp_path):
    import json

    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, eval_each_epoch=True,
                  should_stop=_stop_after(20), log=lambda m: None)
    train_run(out, None, resume=True, log=lambda m: None)  # as `--resume` without the flag
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r.get("event") == "eval"] == [1, 2]


def test_a_run_stopped_before_any_checkpoint(corpus, tmp_path, capsys):
    """Its leftovers (metrics, an empty checkpoints/) are neither resumable nor silently
    mixed with a new run's: --out asks for --overwrite, and --resume says so too."""
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINTS).mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 0}\n')
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *FLAGS]) == 2
    assert "stopped before any checkpoint" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *FLAGS, "--overwrite"]) == 0
    assert '{"epoch": 0}' not in (out / "metrics.jsonl").read_text()


def test_resume_accepts_flags_equal_to_the_defaults_in_effect(corpus, tmp_path):
    """The run took SG's default alpha (None → 0.025): ``--alpha 0.025`` asks for the same."""
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(3), log=lambda m: None)
    summary = train_run(out, None, resume=True, resume_expect={"alpha": 0.025},
                        log=lambda m: None)
    assert summary["resumed_from"] is not None


def test_resume_from_another_directory_with_a_relative_corpus(corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(corpus.parent)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus.name, should_stop=_stop_after(3),
                  log=lambda m: None)
    monkeypatch.chdir(tmp_path)
    train_run(out, None, resume=True, log=lambda m: None)
    assert (out / "vectors.bin").exists()
    with pytest.raises(W2VError, match="nothing to resume"):
        train_run(tmp_path / "no" / "such" / "run", None, resume=True, log=lambda m: None)
    assert not (tmp_path / "no").exists()


def test_all_corrupt_checkpoints_give_one_line_each_and_no_traceback(corpus, tmp_path):
    """A failed Orbax restore leaves its other reads running; their errors came out as
    asyncio tracebacks between the warnings (7 tries in 11)."""
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(40),
                  checkpoints=CheckpointOptions(every_words=5000, keep=3), log=lambda m: None)
    for f in (out / CHECKPOINTS).glob("*/state/ocdbt.process_0/d/*"):
        f.write_bytes(f.read_bytes()[:10])
    code = "from w2v_jax.cli import main; raise SystemExit(main(sys.argv[1:]))"
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", "import sys; " + code, "export", str(out),
                            str(tmp_path / "e.bin"), "--which", "out"],
                           capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, r.stderr
        assert len(lines) == 4 and "Traceback" not in r.stderr, r.stderr
        assert all("is unusable" in x for x in lines[:3]) and "reads back intact" in lines[3]


def test_second_process_into_the_same_run_refuses(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):
        assert main(["train", "--out", str(out), "--epochs", "1", "--no-progress"]) == 2
    assert f"another w2v-jax process (pid {os.getpid()}) is training into" in capsys.readouterr().err
    assert not (out / "vectors.bin").exists()


def test_divergence_keeps_the_last_good_checkpoint(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), "--out", str(out), *FLAGS,
                 "--alpha", "1e30", "--min-alpha", "1e30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "diverged" in err and "last good checkpoint, step 0," in err and "--alpha" in err and "--max-row-terms" in err
    assert "--overwrite" in err  # not --resume, which would keep the alpha that diverged
    got = restore_latest(out / CHECKPOINTS)
    assert got.step == 0 and np.isfinite(got.w_in).all()


# --- Real processes, killed with SIGKILL or stopped with SIGTERM -----------------------

_DRIVER = textwrap.dedent("""
    import os, signal, sys
    kill_at_save = int(os.environ.get("KILL_AT_SAVE", "0"))
    if kill_at_save:
        # SIGKILL this process in the middle of save number KILL_AT_SAVE: after its data
        # are written to Orbax's temporary directory, before it is renamed into place.
        real_rename, seen = os.rename, []
        def rename(src, dst, *a, **k):
            if str(src).endswith(".orbax-checkpoint-tmp") and \\
                    os.path.basename(os.path.dirname(str(dst))) == "checkpoints":
                seen.append(dst)
                if len(seen) == kill_at_save:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_rename(src, dst, *a, **k)
        os.rename = rename
    from w2v_jax.cli import main
    sys.exit(main(sys.argv[1:]))
""")


# The CLI tunes XLA_FLAGS when unset; pin them to this process's so that the
# subprocesses compute exactly what the in-process reference run computed.
_ENV = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", ""))


def _spawn(args, **env):
    return subprocess.Popen([sys.executable, "-c", _DRIVER, "train", *args],
                            env=dict(_ENV, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])


def _wait_for_checkpoints(out, n, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        d = out / CHECKPOINTS
        if d.is_dir() and sum(p.name.isdigit() for p in d.iterdir()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {n} checkpoints before the process ended: {proc.communicate()}")


@needs_bitwise_reproducibility
@pytest.mark.parametrize("how", ["sigkill-mid-run", "sigkill-mid-save", "sigterm"])
def test_killed_process_resumes_to_the_uninterrupted_vectors(corpus, reference, tmp_path, how):
    out = tmp_path / "run"
    args = ["--corpus", str(corpus), "--out", str(out), *FLAGS, "--checkpoint-every-words", "4000"]
    if how == "sigkill-mid-save":
        proc = _spawn(args, KILL_AT_SAVE="3")
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        assert list((out / CHECKPOINTS).glob("*.orbax-checkpoint-tmp*")), "not killed mid-save"
    else:
        proc = _spawn(args)
        _wait_for_checkpoints(out, 3, proc)
        proc.send_signal(signal.SIGKILL if how == "sigkill-mid-run" else signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if how == "sigterm":
            assert proc.returncode == 128 + signal.SIGTERM, err
            assert "continue with: w2v-jax train --resume" in err
        else:
            assert proc.returncode == -signal.SIGKILL
    assert not (out / "vectors.bin").exists()
    resumed = subprocess.run([sys.executable, "-m", "w2v_jax.cli", "train", "--resume", str(out),
                              "--no-progress"], capture_output=True, text=True, timeout=120,
                             env=_ENV,
                             cwd=Path(__file__).resolve().parents[1])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from checkpoint step" in resumed.stderr
    assert (out / "vectors.bin").read_bytes() == reference
    assert not list((out / CHECKPOINTS).glob("*.orbax-checkpoint-tmp*"))  # cleaned up


@needs_bitwise_reproducibility
@pytest.mark.parametrize("lanes", [1, 3])
def test_resume_mid_epoch_across_corpus_chunks_is_bit_identical(corpus, tmp_path, monkeypatch,
                                                                 lanes):
    # Small chunks: the stop lands chunks into an epoch; resuming regenerates the epoch's
    # chunks and skips to the block, ending where an uninterrupted run ends. The corpus
    # (30k words) holds 3 pieces: read in order, or in 3 lanes.
    import importlib

    monkeypatch.setattr(importlib.import_module("w2v_jax.train"), "CHUNK_TOKENS", 4000)
    ref = tmp_path / "ref"
    cfg = Config(**HYPER, lanes=lanes)
    train_run(ref, cfg, corpus, checkpoints=CheckpointOptions(enabled=False),
              log=lambda m: None)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, cfg, corpus, should_stop=_stop_after(70),
                  checkpoints=CheckpointOptions(every_words=10_000), log=lambda m: None)
    train_run(out, None, resume=True, log=lambda m: None)
    assert (out / "vectors.bin").read_bytes() == (ref / "vectors.bin").read_bytes()


def test_a_resumed_run_keeps_its_clock_and_supersedes_what_it_redoes(corpus, tmp_path):
    import json

    from w2v_jax.experiment import _current_records

    out = tmp_path / "run"
    ck = CheckpointOptions(every_words=5000, keep=2)
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, checkpoints=ck, should_stop=_stop_after(150),
                  log=lambda m: None)
    at_stop = restore_latest(out / CHECKPOINTS).position
    assert at_stop.seconds > 0
    # A killed process may have logged past its last checkpoint; the resumed run redoes that.
    ghost = {"epoch": at_stop.epoch, "words": at_stop.words + 1, "total_words": 0, "loss": 99.0,
             "lr": 0.0, "words_per_sec": 0.0, "elapsed": 1e6}
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(ghost) + "\n")
    summary = train_run(out, None, resume=True, checkpoints=ck, log=lambda m: None)
    records = _current_records(out / "metrics.jsonl")
    progress = [r for r in records if "loss" in r and "event" not in r]
    assert ghost not in progress and len(progress) >= 2
    after = [r["elapsed"] for r in progress if r["words"] > at_stop.words]
    assert after and min(after) >= at_stop.seconds  # the clock goes on from the checkpoint
    elapsed = [r["elapsed"] for r in progress]
    assert elapsed == sorted(elapsed)
    assert summary["elapsed"] >= max(elapsed) - 1e-6 and summary["elapsed"] > at_stop.seconds
    assert summary["steps"] == summary["total_steps"] - summary["resumed_from"] > 0


def test_a_resumed_run_keeps_its_checkpoint_options_unless_given_others(corpus, tmp_path):
    import argparse

    from w2v_jax.cli import _checkpoint_options

    out = tmp_path / "run"
    mine = CheckpointOptions(every_words=2000, every_minutes=None, keep=1)
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, checkpoints=mine, should_stop=_stop_after(20),
                  log=lambda m: None)
    with pytest.raises(Interrupted):  # as `w2v-jax train --resume RUN` with no checkpoint flag
        train_run(out, None, resume=True, should_stop=_stop_after(60), log=lambda m: None)
    assert len(checkpoint_steps(out / CHECKPOINTS)) == 1  # keep=1, not the default 3
    assert restore_latest(out / CHECKPOINTS).meta["checkpoints"] == {
        "every_words": 2000, "every_minutes": None, "keep": 1, "enabled": True}

    def flags(**given):
        return argparse.Namespace(**{"resume": str(out), "checkpoint_every_words": None,
                                     "checkpoint_every_minutes": None, "keep_checkpoints": None,
                                     "no_checkpoints": False} | given)

    assert _checkpoint_options(flags()) is None  # train_run takes the saved ones
    assert _checkpoint_options(flags(keep_checkpoints=2)) == CheckpointOptions(
        every_words=2000, every_minutes=None, keep=2)
    assert _checkpoint_options(flags(resume=None, checkpoint_every_minutes=0.0)) == \
        CheckpointOptions(every_minutes=None)


def test_a_damaged_orbax_metadata_file_prints_no_log_lines(corpus, tmp_path, caplog):
    # Orbax reads on without its _CHECKPOINT_METADATA (the tables' checksums still
    # guard the restore) but logged "ERROR:absl:Failed to json parse ..." for it.
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(20),
                  checkpoints=CheckpointOptions(every_words=5000), log=lambda m: None)
    for meta in (out / CHECKPOINTS).glob("*/_CHECKPOINT_METADATA"):
        meta.write_text(meta.read_text()[:20])
    caplog.clear()
    assert main(["export", str(out), str(tmp_path / "o.bin"), "--which", "out"]) == 0
    summary = train_run(out, None, resume=True, log=lambda m: None)
    assert summary["resumed_from"] is not None and (out / "vectors.bin").exists()
    logged = [r.getMessage() for r in caplog.records if r.levelno >= 30]  # WARNING and up
    assert not any("json parse" in m for m in logged), logged


def test_checkpoints_of_older_formats_keep_their_defaults():
    from w2v_jax.checkpoint import saved_config

    old_cbow_softmax = {"config": {"sg": 0, "objective": "softmax", "batch_size": None}}
    assert saved_config(old_cbow_softmax) | {} == {"sg": 0, "objective": "softmax",
                                                   "batch_size": 512, "lanes": 1}
    assert saved_config(old_cbow_softmax | {"format": 2})["batch_size"] is None
    assert saved_config({"config": {"sg": 1, "objective": "softmax", "batch_size": None,
                                    "lanes": 8}})["batch_size"] is None


def test_a_checkpoint_without_a_clock_gives_no_whole_run_time(corpus, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, should_stop=_stop_after(20),
                  checkpoints=CheckpointOptions(every_words=5000), log=lambda m: None)
    assert restore_latest(out / CHECKPOINTS).position.seconds > 0
    import w2v_jax.checkpoint as ck

    real = ck.Position

    def as_before(**fields):  # a checkpoint written before Position.seconds existed
        fields.pop("seconds", None)
        return real(**{"seconds": None} | fields)

    ck.Position = as_before
    try:
        summary = train_run(out, None, resume=True, log=lambda m: None)
    finally:
        ck.Position = real
    assert summary["elapsed"] is None and summary["train_seconds"] > 0


def test_a_stop_at_an_epochs_last_block_still_evaluates_that_epoch(corpus, tmp_path):
    import json

    from w2v_jax.experiment import _current_records

    epochs = []
    train_run(tmp_path / "plain", Config(**HYPER), corpus, log=lambda m: None,
              checkpoints=CheckpointOptions(enabled=False),
              on_progress=lambda p: epochs.append(p.epoch))
    first_epoch_calls = epochs.count(0)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), corpus, eval_each_epoch=True, log=lambda m: None,
                  should_stop=_stop_after(first_epoch_calls))
    assert restore_latest(out / CHECKPOINTS).position.epoch == 1  # stopped at the boundary
    train_run(out, None, resume=True, eval_each_epoch=True, log=lambda m: None)
    evals = [r["epoch"] for r in _current_records(out / "metrics.jsonl")
             if r.get("event") == "eval"]
    assert evals == [1, 2], json.dumps(evals)


def test_a_checkpoint_with_settings_that_never_acted_still_resumes():
    """Older code accepted hs with negative=10 (ignored); its checkpoints keep them."""
    from w2v_jax.checkpoint import saved_config

    old = Config(objective="hs").to_dict() | {"negative": 10, "sampler": "cdf"}
    assert Config.from_dict(saved_config({"config": old, "format": 2})) == Config(objective="hs")



@needs_bitwise_reproducibility
def test_a_run_read_from_a_pipe_resumes_from_the_text_given_again(corpus, reference, tmp_path):
    import threading

    def piped(text: bytes):
        r, w = os.pipe()
        threading.Thread(target=lambda: (os.write(w, text), os.close(w)), daemon=True).start()
        return r, f"/dev/fd/{r}"

    text = corpus.read_bytes()
    out = tmp_path / "run"
    r, path = piped(text)
    with pytest.raises(Interrupted):
        train_run(out, Config(**HYPER), path, should_stop=_stop_after(20), log=lambda m: None)
    os.close(r)
    with pytest.raises(W2VError, match=r"read its corpus from a pipe .*give the same text again"):
        train_run(out, None, resume=True, log=lambda m: None)
    r, path = piped(text)
    train_run(out, None, path, resume=True, log=lambda m: None)
    os.close(r)
    assert (out / "vectors.bin").read_bytes() == reference
    # Finished: nothing to resume, and no text asked for.
    assert train_run(out, None, resume=True, log=lambda m: None)["already_finished"]
