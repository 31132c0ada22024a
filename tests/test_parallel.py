"""Data-parallel training over 4 forced host devices (see conftest): the combined step,
replicated vs vocabulary-sharded tables, quality against one device, and two processes
training together through jax.distributed on localhost."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import planted_topics_text
from w2v_jax import Config, load_corpus, train
from w2v_jax.batching import epoch_stream
from w2v_jax.errors import W2VError
from w2v_jax.train import TrainState, epoch_blocks, init_state, objective_aux, run_steps

D = 4
pytestmark = pytest.mark.skipif(jax.device_count() < D, reason="needs 4 (forced host) devices")


def _topic_separation(words, w_in):
    w = w_in / np.linalg.norm(w_in, axis=1, keepdims=True)
    idx = {x: i for i, x in enumerate(words)}
    a = [idx[f"a{i}"] for i in range(20)]
    b = [idx[f"b{i}"] for i in range(20)]
    s = w @ w.T
    return s[np.ix_(a, a)].mean() - s[np.ix_(a, b)].mean()


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    # 41 word types: the sharded tables' rows do not divide evenly over 4 devices.
    p = tmp_path_factory.mktemp("par") / "topics.txt"
    p.write_text(planted_topics_text(n_lines=600) + "odd one out\n" * 5)
    return load_corpus(p, min_count=1)


@pytest.mark.parametrize("objective,tables", [("softmax", "replicated"), ("hs", "replicated"),
                                              ("hs", "sharded")])
@pytest.mark.parametrize("sg", [1, 0])
def test_a_parallel_step_is_one_step_of_all_devices_centres(objective, tables, sg):
    # D devices × C centres, updates combined, must equal one device taking the D·C
    # centres in one step (objectives without negatives, no row-term cap, constant lr).
    from w2v_jax import parallel as dp

    rng = np.random.default_rng(0)
    v, c, w = 50, 8, 2
    ids = rng.integers(0, v, 600).astype(np.int32)
    sent = np.repeat(np.arange(12), 50).astype(np.int32)
    stream = epoch_stream(ids, sent, np.ones(v), w, rng)
    common = dict(sg=sg, window=w, objective=objective, steps_per_call=3, alpha=0.05,
                  min_alpha=0.05, vector_size=8)
    if objective != "softmax":  # which has none
        common["max_row_terms"] = 1e9
    one = Config(batch_size=D * c, **common)
    many = Config(batch_size=c, devices=D, tables=tables, **common)
    counts = np.bincount(ids, minlength=v) + 1
    from w2v_jax.vocab import Vocab
    vocab = Vocab(tuple(f"w{i}" for i in range(v)), np.sort(counts)[::-1])
    aux = objective_aux(one, vocab)
    state = init_state(jax.random.key(0), v, 8, 0.5)
    state = state._replace(w_out=jax.numpy.asarray(rng.standard_normal((v, 8)) * 0.3,
                                                   jax.numpy.float32))
    host = TrainState(*(np.array(x) for x in state[:3]),
                      jax.random.wrap_key_data(np.array(jax.random.key_data(state.key))))
    _, _, block1 = next(epoch_blocks(stream, one, 0))
    _, _, blockd = next(epoch_blocks(stream, many, 0, devices=D))
    np.testing.assert_array_equal(blockd["reach"].reshape(3, -1), block1["reach"])
    ref, (loss1, n1) = run_steps(state, aux, block1, cfg=one)
    par = dp.make_parallel(many, v)
    got, (lossd, nd) = dp.run_steps_parallel(dp.place_state(host, par), aux,
                                             dp.place_block(blockd, par), cfg=many, par=par)
    got = dp.host_state(got, par)
    assert float(n1) == float(nd) > 0
    np.testing.assert_allclose(float(lossd), float(loss1), rtol=1e-5)
    np.testing.assert_allclose(got.w_in, np.asarray(ref.w_in), atol=2e-6)
    np.testing.assert_allclose(got.w_out, np.asarray(ref.w_out), atol=2e-6)
    assert int(got.step) == 3


@pytest.mark.parametrize("sg,objective", [(1, "ns"), (0, "ns"), (1, "hs")])
def test_sharded_and_replicated_tables_give_the_same_vectors(topics, sg, objective):
    vocab, corpus = topics
    base = dict(sg=sg, objective=objective, vector_size=16, window=3, epochs=1, batch_size=16,
                steps_per_call=8, min_count=1, devices=D)
    rep = train(Config(tables="replicated", **base), vocab, corpus)
    shd = train(Config(tables="sharded", **base), vocab, corpus)
    assert rep.w_in.shape == shd.w_in.shape == (len(vocab), 16)  # padding removed
    np.testing.assert_allclose(rep.w_in, shd.w_in, atol=1e-6)
    np.testing.assert_allclose(rep.w_out, shd.w_out, atol=1e-6)


@pytest.mark.parametrize("sg", [1, 0])
def test_data_parallel_vectors_are_as_good_as_one_devices(topics, sg):
    vocab, corpus = topics
    base = dict(sg=sg, vector_size=16, window=3, epochs=2, batch_size=16, steps_per_call=8,
                min_count=1, sample=0.0)
    losses = []
    single = train(Config(**base), vocab, corpus)
    sharded = train(Config(devices=D, tables="sharded", **base), vocab, corpus,
                    on_progress=lambda p: losses.append(p.loss))
    s1 = _topic_separation(vocab.words, np.asarray(single.w_in))
    sd = _topic_separation(vocab.words, sharded.w_in)
    assert s1 > 0.5 and sd > 0.8 * s1, (s1, sd)
    assert losses[-1] < losses[0]


def test_bad_device_requests_are_one_line_errors():
    with pytest.raises(W2VError, match="--devices 64 asked for, but 4 device"):
        from w2v_jax.parallel import make_parallel
        make_parallel(Config(devices=64), 10)
    with pytest.raises(W2VError, match="full softmax .* replicated"):
        Config(objective="softmax", tables="sharded")
    with pytest.raises(W2VError, match="tables must be one of"):
        Config(tables="mirrored")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(corpus, out, *flags, env, stop_one_after=None):
    """Runs `w2v-jax train` as processes 0 and 1 of a 2-process group on localhost (2 CPU
    devices each, vocabulary-sharded tables over the 4). ``stop_one_after``: SIGTERM
    process 1 alone once ``out`` has that many checkpoints."""
    port = _free_port()
    cmd = [sys.executable, "-m", "w2v_jax.cli", "train", *flags, "--no-progress", "--coordinator",
           f"127.0.0.1:{port}", "--num-processes", "2", "--process-id"]
    procs = [subprocess.Popen(cmd + [str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1]) for i in range(2)]
    if stop_one_after is not None:
        import signal
        import time

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and procs[1].poll() is None:
            d = out / "checkpoints"
            if d.is_dir() and sum(p.name.isdigit() for p in d.iterdir()) >= stop_one_after:
                procs[1].send_signal(signal.SIGTERM)
                break
            time.sleep(0.02)
    logs = [p.communicate(timeout=300)[1] for p in procs]
    return [p.returncode for p in procs], logs


def test_two_processes_train_one_model_and_resume_together(tmp_path):
    # jax.distributed on localhost over gloo. Each process trains on its half of the
    # corpus; process 0 writes the run and the checkpoints (the tables gathered to it).
    corpus = tmp_path / "topics.txt"
    corpus.write_text(planted_topics_text(n_lines=500))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    hyper = ["--corpus", str(corpus), "--min-count", "1", "--vector-size", "16", "--window", "3",
             "--epochs", "2", "--batch-size", "16", "--steps-per-call", "4", "--sample", "0",
             "--devices", "4", "--tables", "sharded"]
    ref = tmp_path / "ref"
    codes, logs = _two_processes(corpus, ref, *hyper, "--out", str(ref), env=env)
    assert codes == [0, 0], logs
    crcs = [re.search(r"process (\d): vectors crc32 (\w+)", log).groups() for log in logs]
    assert {c[0] for c in crcs} == {"0", "1"} and crcs[0][1] == crcs[1][1]  # replicas agree
    from w2v_jax.model import load_vectors
    kv = load_vectors(ref)
    assert _topic_separation(kv.index_to_key, kv.vectors) > 0.5

    # A stop signal to one process stops both at the same call, with a checkpoint; both
    # resume from it and end with the uninterrupted run's vectors.
    out = tmp_path / "run"
    codes, logs = _two_processes(corpus, out, *hyper, "--out", str(out),
                                 "--checkpoint-every-words", "2000", env=env, stop_one_after=3)
    assert codes == [143, 143], logs
    assert "continue with: w2v-jax train --resume" in logs[0]
    assert not (out / "vectors.bin").exists()
    codes, logs = _two_processes(corpus, out, "--resume", str(out), env=env)
    assert codes == [0, 0], logs
    assert "resuming from checkpoint step" in logs[1]
    assert (out / "vectors.bin").read_bytes() == (ref / "vectors.bin").read_bytes()

    # A process index outside the group is refused before any connection is tried.
    r = subprocess.run([sys.executable, "-m", "w2v_jax.cli", "train", "--corpus", str(corpus),
                        "--out", str(tmp_path / "r2"), "--coordinator",
                        f"127.0.0.1:{_free_port()}", "--num-processes", "2", "--process-id", "2"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--process-id must be in 0..1" in r.stderr


def test_processes_started_with_different_flags_are_refused_in_one_line(tmp_path):
    # They used to meet in the step's collectives with arrays of other shapes: gloo
    # aborted both (exit 134, C++ traces).
    corpus = tmp_path / "topics.txt"
    corpus.write_text(planted_topics_text(n_lines=100))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "w2v_jax.cli", "train", "--corpus", str(corpus), "--out",
         str(tmp_path / "run"), "--min-count", "1", "--epochs", "1", "--devices", "2",
         "--no-progress", "--vector-size", str(8 * (i + 1)), "--coordinator",
         f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[1]) for i in range(2)]
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], logs
    assert all("process(es) 1 would train another config, corpus or starting point" in log
               for log in logs), logs


def test_a_sharded_run_resumes_to_the_uninterrupted_vectors(tmp_path):
    from w2v_jax.errors import Interrupted
    from w2v_jax.run import CheckpointOptions, train_run

    corpus = tmp_path / "topics.txt"
    corpus.write_text(planted_topics_text(n_lines=400))
    cfg = Config(min_count=1, vector_size=8, window=3, epochs=2, batch_size=16,
                 steps_per_call=8, sample=0, devices=D, tables="sharded")
    quiet = dict(log=lambda m: None)
    train_run(tmp_path / "ref", cfg, corpus, checkpoints=CheckpointOptions(enabled=False), **quiet)
    polls = iter(range(1 << 30))
    with pytest.raises(Interrupted):
        train_run(tmp_path / "run", cfg, corpus, should_stop=lambda: next(polls) >= 20, **quiet)
    summary = train_run(tmp_path / "run", None, resume=True, **quiet)
    assert summary["resumed_from"] == 21 * 8
    assert ((tmp_path / "run" / "vectors.bin").read_bytes()
            == (tmp_path / "ref" / "vectors.bin").read_bytes())
