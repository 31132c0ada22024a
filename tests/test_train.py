"""Training end to end on tiny corpora with planted structure."""

import dataclasses

import jax
import numpy as np
import pytest

from conftest import needs_bitwise_reproducibility, one_step_block
from w2v_jax import Config, load_corpus, train
from w2v_jax.train import init_state, learning_rate

SMALL = dict(vector_size=16, window=3, min_count=1, negative=5, sample=0,
             batch_size=64, shared_negatives=4, steps_per_call=16, seed=0)


def topic_separation(vocab, w_in):
    u = w_in / np.linalg.norm(w_in, axis=1, keepdims=True)
    topic = np.array([w[0] for w in vocab.words])
    sim = u @ u.T
    same = sim[topic[:, None] == topic[None, :]].mean()
    diff = sim[topic[:, None] != topic[None, :]].mean()
    return same, diff


@pytest.mark.parametrize("sg", [1, 0])
def test_planted_topics_separate_and_loss_decreases(topic_corpus, sg):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    losses = []
    cfg = Config(**SMALL, sg=sg, epochs=4)
    state = train(cfg, vocab, corpus, on_progress=lambda p: losses.append(p.loss))
    same, diff = topic_separation(vocab, np.asarray(state.w_in))
    assert same > diff + 0.3, (same, diff)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert int(state.step) > 0


@pytest.mark.parametrize("sampler", ["alias", "cdf", "categorical"])
def test_every_sampler_trains(topic_corpus, sampler):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    state = train(Config(**SMALL, sampler=sampler, epochs=3), vocab, corpus)
    same, diff = topic_separation(vocab, np.asarray(state.w_in))
    assert same > diff + 0.3


@needs_bitwise_reproducibility
def test_same_seed_gives_identical_vectors(topic_corpus):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    a = np.asarray(train(Config(**SMALL, epochs=1), vocab, corpus).w_in)
    b = np.asarray(train(Config(**SMALL, epochs=1), vocab, corpus).w_in)
    c = np.asarray(train(Config(**{**SMALL, "seed": 1}, epochs=1), vocab, corpus).w_in)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_cbow_exact_update_differs_from_word2vec_update(topic_corpus):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    cfg = Config(**SMALL, sg=0, epochs=1)
    a = np.asarray(train(cfg, vocab, corpus).w_in)
    b = np.asarray(train(dataclasses.replace(cfg, cbow_update="exact"), vocab, corpus).w_in)
    assert not np.allclose(a, b)


def test_init_scale_sets_the_range_of_w_in(topic_corpus):
    for scale in (0.5, 8.0):
        w_in = np.asarray(init_state(jax.random.key(0), 2000, 50, scale).w_in)
        assert np.abs(w_in).max() <= scale / 50
        assert np.abs(w_in).max() > 0.99 * scale / 50  # uniform over the whole range
        assert abs(w_in.std() - scale / 50 / np.sqrt(3)) < 0.01 * scale / 50
    # train() starts from Config.init_scale: one step barely moves W_in from its init
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    cfg = Config(**SMALL, epochs=1, init_scale=0.5, min_alpha=1e-6, alpha=1e-6)
    small = np.abs(np.asarray(train(cfg, vocab, corpus).w_in)).max()
    wide = np.abs(np.asarray(train(dataclasses.replace(cfg, init_scale=4.0), vocab,
                                   corpus).w_in)).max()
    assert small <= 0.5 / 16 * 1.01 and wide > 2.0 / 16


def test_learning_rate_decays_linearly_to_min_alpha():
    cfg = Config(alpha=0.025, min_alpha=0.0001, epochs=2)
    lr = learning_rate(cfg, 0, np.array([0.0, 0.5]))
    np.testing.assert_allclose(lr, [0.025, 0.025 - 0.0249 / 4], rtol=1e-6)
    np.testing.assert_allclose(learning_rate(cfg, 1, np.array([1.0])), [0.0001], rtol=1e-6)
    assert Config(sg=0).learning_rate == 0.05 and Config(sg=1).learning_rate == 0.025


def test_row_term_cap_scales_only_rows_with_many_terms():
    import jax.numpy as jnp

    from w2v_jax.train import _row_term_cap

    ids = jnp.array([3, 1, 3, 2], jnp.int32)
    terms = jnp.array([4.0, 2.0, 6.0, 1.0])  # row 3 has 10 terms over its two entries
    np.testing.assert_allclose(np.asarray(_row_term_cap(ids, terms, 5, 5.0)), [0.5, 1, 0.5, 1])


@pytest.mark.parametrize("sg_negatives", ["centre", "pair"])
def test_sg_with_row_term_cap_trains(topic_corpus, sg_negatives):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    cfg = Config(**SMALL, sg=1, epochs=4, max_row_terms=4.0, sg_negatives=sg_negatives)
    same, diff = topic_separation(vocab, np.asarray(train(cfg, vocab, corpus).w_in))
    assert same > diff + 0.3, (same, diff)


def test_progress_reports_words_and_speed(topic_corpus):
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    seen = []
    train(Config(**SMALL, epochs=3), vocab, corpus, on_progress=seen.append)
    assert seen[-1].words == seen[-1].total_words == 3 * corpus.raw_words
    assert all(p.words_per_sec > 0 and np.isfinite(p.loss) for p in seen)
    assert [p.words for p in seen] == sorted(p.words for p in seen)
    assert seen[0].lr > seen[-1].lr


def test_divergence_is_reported(topic_corpus):
    from w2v_jax.errors import W2VError
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    with pytest.raises(W2VError, match="lower alpha or batch_size.*--alpha"):
        train(Config(**SMALL, alpha=1e30, min_alpha=1e30), vocab, corpus)


def _one_step(sg, cbow_update="word2vec", sg_negatives="pair", cap=None, k=3):
    """One trainer step on a hand-made span, and the same step from the pure objectives.

    ``cap`` (CBOW only): max_row_terms; None disables it (1e9). ``k``: negatives per
    pair (SG "centre" draws M = 3k per centre: k = 6 takes the batched-matmul path).
    """
    import jax.numpy as jnp

    from w2v_jax import objectives, sampling
    from w2v_jax.train import _window_mask, run_steps

    v, d, w, c, s = 30, 6, 2, 8, 2
    cfg = Config(sg=sg, vector_size=d, window=w, batch_size=c, shared_negatives=s, negative=k,
                 steps_per_call=1, cbow_update=cbow_update, min_count=1,
                 sg_negatives=sg_negatives, max_row_terms=1e9 if cap is None else cap)
    rng = np.random.default_rng(0)
    tok, sent, reach, block, state = one_step_block(rng, v, d, w, c, lr=0.1)
    lr = 0.1
    table = sampling.build("alias", np.arange(1, v + 1, dtype=np.float64))
    w_in, w_out = np.asarray(state.w_in, np.float64), np.asarray(state.w_out, np.float64)
    m = cfg.negatives_per_centre
    per_centre = sg and sg_negatives == "centre"
    shape = (c // s, m) if per_centre else (2 * w, c // s, k) if sg else (c // s, k)
    negs = np.asarray(sampling.draw("alias", table, jax.random.fold_in(state.key, 0), (1, *shape)))[0]
    # Full f32 products: on GPUs JAX's default is TF32 (10-bit mantissa), which missed
    # these tolerances on an H100 (rel. error 5e-3); the math is what is checked here.
    with jax.default_matmul_precision("highest"):
        new, (loss, count) = run_steps(state, table, block, cfg=cfg)

    mask = np.asarray(_window_mask(jnp.asarray(sent), jnp.asarray(reach), w))
    offs = np.array([o for o in range(-w, w + 1) if o != 0])
    ctx_pos = w + np.arange(c)[:, None] + offs[None, :]
    centres = tok[w:w + c]
    exp_in, exp_out, exp_loss = w_in.copy(), w_out.copy(), 0.0
    if per_centre:
        # Every real pair's positive term (ns_grads with no negatives), and centre i's M
        # draws negs[i mod (C/S)], each term weighted n_i·K/M (the gradient by autodiff).
        def neg_loss(h, cn, weight):
            return -weight * jnp.sum(jax.nn.log_sigmoid(-(cn @ h)))

        for ci in range(c):
            h, neg_ids = w_in[centres[ci]], negs[ci % (c // s)]
            for j in np.flatnonzero(mask[ci]):
                ctx_id = tok[ctx_pos[ci, j]]
                d_h, d_pos, _ = objectives.ns_grads(h, w_out[ctx_id], w_out[neg_ids[:0]])
                exp_in[centres[ci]] -= lr * np.asarray(d_h)
                exp_out[ctx_id] -= lr * np.asarray(d_pos)
                exp_loss += float(objectives.ns_loss(h, w_out[ctx_id], w_out[neg_ids[:0]]))
            weight = mask[ci].sum() * k / m
            l, (d_h, d_neg) = jax.value_and_grad(neg_loss, argnums=(0, 1))(
                jnp.asarray(h), jnp.asarray(w_out[neg_ids]), weight)
            exp_in[centres[ci]] -= lr * np.asarray(d_h)
            np.add.at(exp_out, neg_ids, -lr * np.asarray(d_neg))
            exp_loss += float(l)
    elif sg:
        # Every real pair is one spec NS step's gradient (ns_grads); the pairs at offset j
        # of the S centres i with i mod (C/S) = g use negatives negs[j, g].
        for ci in range(c):
            for j in np.flatnonzero(mask[ci]):
                ctx_id, neg_ids = tok[ctx_pos[ci, j]], negs[j, ci % (c // s)]
                h, cp, cn = w_in[centres[ci]], w_out[ctx_id], w_out[neg_ids]
                d_h, d_pos, d_neg = objectives.ns_grads(h, cp, cn)
                exp_in[centres[ci]] -= lr * np.asarray(d_h)
                exp_out[ctx_id] -= lr * np.asarray(d_pos)
                np.add.at(exp_out, neg_ids, -lr * np.asarray(d_neg))
                exp_loss += float(objectives.ns_loss(h, cp, cn))
    else:
        d_out, terms = np.zeros_like(w_out), np.zeros(v)  # W_out updates, terms per row
        for g in range(c // s):
            rows = np.arange(g, c, c // s)  # the S windows sharing draw g
            ctx = w_in[tok[ctx_pos[rows]]]  # f[S, 2W, d]
            has = mask[rows].any(axis=1)
            h = np.stack([objectives.cbow_hidden(x, m) for x, m in zip(ctx, mask[rows])])
            l, (d_h, d_pos, d_neg) = objectives.ns_block_value_and_grads(
                h[has], w_out[centres[rows][has]], w_out[negs[g]])
            d_h = np.asarray(d_h)
            if cbow_update == "exact":
                d_h = d_h / mask[rows][has].sum(axis=1, keepdims=True)
            for i, dh in zip(np.flatnonzero(has), d_h):
                np.add.at(exp_in, tok[ctx_pos[rows][i][mask[rows][i]]], -lr * dh)
            np.add.at(d_out, centres[rows][has], -lr * np.asarray(d_pos))
            np.add.at(d_out, negs[g], -lr * np.asarray(d_neg))
            np.add.at(terms, centres[rows][has], 1.0)  # a target: one window's term
            np.add.at(terms, negs[g], has.sum())  # a draw: one term per window sharing it
            exp_loss += float(l)
        # The cap scales each W_out row's summed update by min(1, cap / its terms).
        exp_out += d_out * np.minimum(1.0, cfg.row_term_cap(v) / np.maximum(terms, 1.0))[:, None]
    np.testing.assert_allclose(np.asarray(new.w_in), exp_in, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new.w_out), exp_out, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(loss), exp_loss, rtol=1e-4)
    expected_count = mask.sum() if sg else mask.any(axis=1).sum()
    assert int(count) == expected_count and int(new.step) == 1


@pytest.mark.parametrize("sg, update, sg_negatives, k", [
    (1, "word2vec", "centre", 3), (1, "word2vec", "centre", 6), (1, "word2vec", "pair", 3),
    (0, "word2vec", "centre", 3), (0, "exact", "centre", 3)])
def test_trainer_step_equals_pure_objectives(sg, update, sg_negatives, k):
    _one_step(sg, update, sg_negatives, k=k)


def test_cbow_row_term_cap_scales_the_busy_w_out_rows():
    # A cap of 2 terms: in this step several W_out rows have 3 or more (a draw shared by
    # two windows and drawn again, or a target also drawn), so the cap must bite.
    _one_step(0, sg_negatives="centre", cap=2.0)


def test_default_row_term_caps():
    cbow = Config(sg=0)
    assert cbow.centres_per_step == 512 and cbow.row_term_cap(50_000) == 10.0
    # A 40-word vocabulary: every row has ~77 terms a step; the cap leaves them be.
    assert cbow.row_term_cap(40) == pytest.approx(4 * 512 * 6 / 40)
    assert Config(sg=1).row_term_cap(50_000) is None
    assert Config(sg=0, objective="hs").row_term_cap(40) == 20.0
    assert Config(sg=0, max_row_terms=3.0).row_term_cap(40) == 3.0


def test_gensim_like_api_trains_and_saves(topic_corpus, tmp_path):
    from w2v_jax import Word2Vec, load_vectors

    model = Word2Vec(corpus_file=topic_corpus, vector_size=16, window=3, min_count=1, sample=0,
                     epochs=4, batch_size=64, steps_per_call=16, seed=0)
    near = [w for w, _ in model.wv.most_similar("a0", topn=5)]
    assert all(w.startswith("a") for w in near), near  # neighbours from the same topic
    model.save(tmp_path / "run")
    back = load_vectors(tmp_path / "run")
    np.testing.assert_array_equal(back.vectors, model.wv.vectors)
    assert model.timings["train_seconds"] > 0


def test_save_refuses_a_training_run_unless_overwrite(topic_corpus, tmp_path):
    # Left beside the saved vectors, a trained run's checkpoints would be read as their
    # W_out (export --which out): another vocabulary, silently.
    from w2v_jax import Word2Vec, load_vectors
    from w2v_jax.errors import W2VError
    from w2v_jax.interop import run_vectors
    from w2v_jax.run import train_run

    train_run(tmp_path / "run", Config(vector_size=8, epochs=1, min_count=1, steps_per_call=8,
                                       batch_size=16), corpus_path=topic_corpus)
    model = Word2Vec(corpus_file=topic_corpus, vector_size=8, epochs=1, min_count=3,
                     steps_per_call=8, batch_size=16)
    with pytest.raises(W2VError, match="holds a training run .*overwrite=True"):
        model.save(tmp_path / "run")
    model.save(tmp_path / "run", overwrite=True)
    assert not (tmp_path / "run" / "checkpoints").exists()
    np.testing.assert_array_equal(load_vectors(tmp_path / "run").vectors, model.wv.vectors)
    with pytest.raises(W2VError):
        run_vectors(tmp_path / "run", which="out")  # no stale W_out any more
    model.save(tmp_path / "run")  # an earlier save is simply replaced
    (tmp_path / "file").write_text("")
    with pytest.raises(W2VError, match="cannot save the run into .*file"):
        model.save(tmp_path / "file" / "under")
    # gensim's other calls name what to do here instead of an AttributeError
    for call, says in [(lambda: model.build_vocab(["a"]), "corpus_file=PATH"),
                       (lambda: model.train(["a"]), "corpus_file=PATH"),
                       (lambda: Word2Vec.load(tmp_path / "run"), "load_vectors"),
                       (lambda: model.wv.save(tmp_path / "kv"), "save_word2vec_format"),
                       (lambda: type(model.wv).load(tmp_path / "kv"), "load_word2vec_format")]:
        with pytest.raises(W2VError, match=says):
            call()


@pytest.mark.parametrize("kwargs, match", [
    ({"sentences": [["a", "b"]]}, "no argument 'sentences': write the sentences to a text file"),
    ({"hs": 1}, "pass objective='hs'"),
    ({"workers": 4}, "no worker threads"),
    ({"windw": 3}, "unknown config field"),
    ({"corpus_file": ""}, "corpus_file is empty"),
])
def test_api_refuses_gensim_only_and_empty_arguments(kwargs, match):
    from w2v_jax import Word2Vec
    from w2v_jax.errors import W2VError

    with pytest.raises(W2VError, match=match):
        Word2Vec(**kwargs)


def test_cli_tunes_xla_only_when_unset(monkeypatch):
    import importlib.metadata

    from w2v_jax.cli import tune_xla_cpu

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.10.2")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    tune_xla_cpu()
    import os
    assert "--xla_cpu_multi_thread_eigen=false" in os.environ["XLA_FLAGS"]
    monkeypatch.setenv("XLA_FLAGS", "--mine")
    tune_xla_cpu()
    assert os.environ["XLA_FLAGS"] == "--mine"  # a user's flags are left alone
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.11.0")
    tune_xla_cpu()
    assert "XLA_FLAGS" not in os.environ  # unknown versions get no flags


def test_the_step_is_compiled_once_before_the_tables_exist(topic_corpus, caplog, monkeypatch):
    # compile_ahead compiles run_steps from shapes alone, so that the compiler's transient
    # memory does not add to the tables'; the first real call must then find the program
    # in jit's cache rather than compile it a second time.
    import importlib
    import logging

    module = importlib.import_module("w2v_jax.train")
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    cfg = Config(**{**SMALL, "vector_size": 10}, epochs=2)  # shapes no other test compiles

    def compiles():
        return sum("XLA compilation of jit(run_steps)" in r.getMessage() for r in caplog.records)

    seen_at_init = []
    real_init = module.init_state
    monkeypatch.setattr(module, "init_state",
                        lambda *a: seen_at_init.append(compiles()) or real_init(*a))
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        state = train(cfg, vocab, corpus)
    assert seen_at_init == [1]  # compiled before the tables were made
    assert compiles() == 1
    assert int(state.step) > cfg.steps_per_call  # more than one call ran


def test_train_sets_the_heap_for_its_backend(topic_corpus, monkeypatch):
    # Off the CPU the host's epoch pipeline bounds a large step; its chunk arrays must
    # then reuse the heap (w2v_jax.heap): the threshold follows the backend.
    import importlib

    # The full softmax's large per-call temporaries stay on the heap on the CPU.
    from w2v_jax.heap import (ACCELERATOR_MMAP_THRESHOLD, CPU_MMAP_THRESHOLD,
                              SOFTMAX_MMAP_THRESHOLD)

    module = importlib.import_module("w2v_jax.train")
    thresholds = []
    monkeypatch.setattr(module, "return_large_buffers", thresholds.append)
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    for objective in ("ns", "softmax"):
        cfg = Config(**dict(SMALL, negative=0 if objective == "softmax" else 5,
                            shared_negatives=None if objective == "softmax" else 4),
                     objective=objective, epochs=1)
        for backend in ("cpu", "gpu"):  # only the backend's name is asked: runs on any device
            monkeypatch.setattr(module.jax, "default_backend", lambda b=backend: b)
            train(cfg, vocab, corpus)
    assert thresholds == [CPU_MMAP_THRESHOLD, ACCELERATOR_MMAP_THRESHOLD,
                          SOFTMAX_MMAP_THRESHOLD, ACCELERATOR_MMAP_THRESHOLD]


def test_large_freed_buffers_go_back_to_the_os():
    import ctypes
    import ctypes.util

    from w2v_jax.heap import ACCELERATOR_MMAP_THRESHOLD, CPU_MMAP_THRESHOLD, return_large_buffers

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc ≥ 2.33 (mallinfo2)")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    before = libc.mallinfo2().hblks
    p = libc.malloc(32 << 20)
    if libc.mallinfo2().hblks == before:  # e.g. tcmalloc or jemalloc in LD_PRELOAD
        libc.free(p)
        pytest.skip("malloc is not glibc's in this process: mallopt does not reach it")
    libc.free(p)  # by default this raises glibc's mmap threshold to 32 MiB

    def mappings_for(size):
        before = libc.mallinfo2().hblks
        q = libc.malloc(size)
        mapped = libc.mallinfo2().hblks - before
        libc.free(q)
        return mapped

    chunk_array = 1 << 20  # one of the host's chunk arrays
    assert CPU_MMAP_THRESHOLD <= chunk_array < ACCELERATOR_MMAP_THRESHOLD
    return_large_buffers()  # the CPU's, as the CLI sets it
    assert mappings_for(chunk_array) == 1  # its own mapping: unmapped, not kept, when freed
    return_large_buffers(ACCELERATOR_MMAP_THRESHOLD)
    try:
        assert mappings_for(chunk_array) == 0  # from the heap, reused: the fast host path
        assert mappings_for(2 * ACCELERATOR_MMAP_THRESHOLD) == 1
    finally:
        return_large_buffers()


def test_metrics_writer_starts_a_new_line_after_a_record_cut_short(tmp_path):
    import json

    from w2v_jax.train import MetricsWriter

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n{"b": ')  # a killed process's last, partial record
    w = MetricsWriter(path)
    w.write({"event": "resume"})
    w.close()
    lines = path.read_text().splitlines()
    assert lines[:2] == ['{"a": 1}', '{"b": '] and json.loads(lines[2]) == {"event": "resume"}
    w = MetricsWriter(path)  # a complete file: nothing added
    w.write({"c": 2})
    w.close()
    assert path.read_text().splitlines()[3:] == ['{"c": 2}']


@pytest.mark.parametrize("sg", [0, 1])
def test_a_new_negative_sampling_objective_needs_only_the_registry(topic_corpus, monkeypatch, sg):
    # The README's *Your own objective*: negative sampling registered again under a new
    # name trains the same vectors, takes ns's settings and gets its negatives, with no
    # other change (each place that once tested for "ns" by name now asks the registry).
    import importlib

    config, steps = importlib.import_module("w2v_jax.config"), importlib.import_module("w2v_jax.train")
    monkeypatch.setattr(config, "OBJECTIVES", config.OBJECTIVES + ("ns2",))
    monkeypatch.setattr(config, "NEGATIVE_SAMPLING", ("ns", "ns2"))
    monkeypatch.setitem(steps.STEPS, "ns2", steps.STEPS["ns"])
    vocab, corpus = load_corpus(topic_corpus, min_count=1)
    settings = dict(SMALL, sg=sg, negative=3, shared_negatives=2)
    a = train(Config(**settings, objective="ns"), vocab, corpus)
    b = train(Config(**settings, objective="ns2"), vocab, corpus)
    np.testing.assert_array_equal(np.asarray(a.w_in), np.asarray(b.w_in))
    assert config.inert({"objective": "ns2"}) == config.inert({"objective": "ns"})
    assert Config(objective="ns2", sg=0).row_term_cap(1000) is not None  # CBOW's default cap
