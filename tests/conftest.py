"""Shared fixtures: tiny corpora made on the fly, so tests need no downloaded data."""

import numpy as np
import pytest


def planted_topics_text(seed: int = 0, n_lines: int = 400, line_len: int = 20) -> str:
    """Two disjoint topic vocabularies; every line draws its words from one topic only."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]]
    lines = []
    for n in range(n_lines):
        words = topics[n % 2]
        lines.append(" ".join(rng.choice(words, size=line_len)))
    return "\n".join(lines) + "\n"


@pytest.fixture
def topic_corpus(tmp_path):
    p = tmp_path / "topics.txt"
    p.write_text(planted_topics_text())
    return p
