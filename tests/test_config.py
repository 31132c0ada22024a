"""Config validation: every bad value gets a message naming the field."""

import pytest

from w2v_jax.config import GPU_SETTINGS, Config, accelerator_hint
from w2v_jax.errors import W2VError


@pytest.mark.parametrize("field, value, match", [
    ("vector_size", 0, "vector_size must be a positive"),
    ("window", -1, "window must be a positive"),
    ("window", 257, "window must be at most 256"),
    ("negative", 0, "negative must be a positive"),
    ("epochs", 0, "epochs must be a positive"),
    ("alpha", 0.0, "alpha must be > 0"),
    ("alpha", -0.1, "alpha must be > 0"),
    ("sg", 2, "sg must be 1"),
    ("sample", -1e-3, "sample must be >= 0"),
    ("min_count", 0, "min_count must be >= 1"),
    ("vector_size", 10.5, "vector_size must be an integer"),
    ("vector_size", "100", "vector_size must be an integer"),
    ("sampler", "magic", "sampler must be one of"),
    ("sg_negatives", "window", "sg_negatives must be one of centre, pair"),
    ("min_alpha", 0.5, "must not exceed alpha"),
])
def test_bad_values_are_named(field, value, match):
    with pytest.raises(W2VError, match=match):
        Config(**{field: value})


def test_batch_must_split_into_shared_blocks():
    with pytest.raises(W2VError, match="multiple of shared_negatives"):
        Config(batch_size=100, shared_negatives=16)
    # hs and softmax share no negatives: any batch size, and gensim's negative=0.
    assert Config(objective="hs", batch_size=7, negative=0).centres_per_step == 7
    assert Config(objective="softmax", sg=0, batch_size=6).centres_per_step == 6


def test_settings_that_do_not_apply_are_refused():
    with pytest.raises(W2VError, match="max_row_terms does not apply to objective 'softmax'"):
        Config(objective="softmax", max_row_terms=5.0)
    with pytest.raises(W2VError, match=r"0 only with an objective that draws none: 'softmax', 'hs'"):
        Config(negative=0)
    with pytest.raises(W2VError, match="sg_negatives='pair' applies to skip-gram only"):
        Config(sg=0, sg_negatives="pair")
    with pytest.raises(W2VError, match="cbow_update='exact' applies to CBOW only"):
        Config(sg=1, cbow_update="exact")
    for objective in ("hs", "softmax"):
        for field, value in [("negative", 10), ("ns_exponent", 0.5), ("shared_negatives", 2),
                             ("sampler", "cdf"), ("sg_negatives", "pair")]:
            with pytest.raises(W2VError, match=f"{field}=.* applies to negative sampling only"):
                Config(objective=objective, **{field: value})
        # Their defaults pass, so a grid over objectives needs no per-objective settings.
        Config(objective=objective, negative=5, sampler="alias", sg_negatives="centre")


def test_numpy_scalars_are_taken_as_plain_numbers():
    import json

    import numpy as np

    c = Config(seed=np.int64(3), vector_size=np.int32(16), alpha=np.float32(0.5), sample=np.float16(0))
    assert (type(c.seed), type(c.vector_size), type(c.alpha)) == (int, int, float)
    assert json.loads(c.to_json())["seed"] == 3 and Config.from_dict(c.to_dict()) == c
    with pytest.raises(W2VError, match="seed must be an integer"):
        Config(seed=np.float64(3.0))


def test_defaults_follow_gensim_and_roundtrip():
    c = Config()
    assert (c.vector_size, c.window, c.min_count, c.sg, c.negative, c.ns_exponent) == (100, 5, 5, 1, 5, 0.75)
    assert Config.from_dict(c.to_dict()) == c
    with pytest.raises(W2VError, match="unknown config field"):
        Config.from_dict({"vectorsize": 3})


def test_gpu_hint_only_where_the_batch_default_is_slow_there():
    for sg in (1, 0):
        hint = accelerator_hint(Config(sg=sg), "gpu")
        assert GPU_SETTINGS[sg][0] in hint and ("skip-gram" if sg else "CBOW") in hint
        # The suggested flags parse to a valid config.
        flags = GPU_SETTINGS[sg][0].split()
        over = {f[2:].replace("-", "_"): float(v) if "row" in f else int(v)
                for f, v in zip(flags[::2], flags[1::2])}
        assert Config(sg=sg, **over).centres_per_step == over["batch_size"]
    assert accelerator_hint(Config(), "cpu") is None
    assert accelerator_hint(Config(), "tpu") is None  # not measured there
    assert accelerator_hint(Config(batch_size=256), "gpu") is None  # the user's choice
    assert accelerator_hint(Config(objective="hs"), "gpu") is None


def test_batch_defaults_per_mode_and_objective():
    # CBOW's full softmax moves every W_out row by all of a step's windows: 512 diverged
    # in the first epoch of the embedded corpus, 128 trained its 5 epochs.
    assert [Config(sg=1).centres_per_step, Config(sg=0).centres_per_step,
            Config(sg=0, objective="softmax").centres_per_step,
            Config(sg=0, objective="hs").centres_per_step,
            Config(sg=0, objective="softmax", batch_size=512).centres_per_step] == \
        [64, 512, 128, 512, 512]


def test_sg_may_be_a_bool_as_gensim_users_write_it():
    assert Config(sg=True).sg == 1 and Config(sg=False).sg == 0
    assert type(Config(sg=True).sg) is int and Config(sg=False).to_dict()["sg"] == 0
