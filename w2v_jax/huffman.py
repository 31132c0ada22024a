"""The Huffman tree of hierarchical softmax, as arrays.

Frequent words get short codes, so the expected path length is the entropy of the
unigram distribution in bits (≈ log₂ V at worst). For word ``w``, ``points[w, :L_w]``
are the ids (0..V-2) of the inner nodes from the root down and ``codes[w, :L_w]`` the
branch taken at each (0 or 1), as in word2vec C; both are padded to the longest path.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np


@dataclasses.dataclass(frozen=True)
class HuffmanTree:
    """Attributes: codes: i8[V, L]; points: i32[V, L]; lengths: i32[V] (all ≥ 1 if V ≥ 2)."""

    codes: np.ndarray
    points: np.ndarray
    lengths: np.ndarray

    @property
    def depth(self) -> int:
        return self.codes.shape[1]


def build_huffman(counts: np.ndarray) -> HuffmanTree:
    """Builds the tree from word counts (any order; ties broken by word id).

    Args:
      counts: i64[V] with V ≥ 1.
    Returns:
      The :class:`HuffmanTree`; inner node ids are assigned in merge order, the root last
      (id V - 2).
    """
    counts = np.asarray(counts, np.int64)
    v = len(counts)
    if v == 1:  # a single word needs no decision: one dummy node, always branch 0
        return HuffmanTree(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.int32),
                           np.ones(1, np.int32))
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * v - 1, np.int64)
    branch = np.zeros(2 * v - 1, np.int8)
    for inner in range(v, 2 * v - 1):  # node ids ≥ v are inner nodes
        c0, a = heapq.heappop(heap)
        c1, b = heapq.heappop(heap)
        parent[a], branch[a] = inner, 0
        parent[b], branch[b] = inner, 1
        heapq.heappush(heap, (c0 + c1, inner))
    root = 2 * v - 2
    paths = []
    for w in range(v):
        codes, points, node = [], [], w
        while node != root:
            codes.append(branch[node])
            points.append(parent[node] - v)
            node = parent[node]
        paths.append((codes[::-1], points[::-1]))
    depth = max(len(c) for c, _ in paths)
    out_codes = np.zeros((v, depth), np.int8)
    out_points = np.zeros((v, depth), np.int32)
    lengths = np.zeros(v, np.int32)
    for w, (c, p) in enumerate(paths):
        out_codes[w, :len(c)] = c
        out_points[w, :len(p)] = p
        lengths[w] = len(c)
    return HuffmanTree(out_codes, out_points, lengths)
