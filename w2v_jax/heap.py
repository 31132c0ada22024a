"""The host's heap: glibc keeps freed memory unless told otherwise.

Two calls into glibc's allocator (no-ops with other C libraries), kept apart from the
trainer so that the CLI can make them before it imports JAX.
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _glibc(function: str):
    """glibc's ``function`` through ctypes, or None (another C library, or none found).

    Looked up among the symbols the process has already loaded (``CDLL(None)``):
    ``ctypes.util.find_library`` would run ldconfig in a subprocess (~6 ms here).
    """
    try:
        return getattr(ctypes.CDLL(None), function)
    except (OSError, AttributeError):
        return None


def release_free_heap() -> None:
    """Hands the heap pages malloc holds free back to the OS (glibc's ``malloc_trim``;
    a no-op with other C libraries).

    XLA's compiler allocates ~100–200 MB on the compiling thread's arena and frees it
    when done, but glibc keeps those pages; trimmed after the first call, SG's resident
    memory for the rest of training fell by ~180 MB (564 → 383 MB, bench corpus).
    """
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


# Bytes from which a buffer gets its own mapping, unmapped when freed. On a CPU the
# trainer's host thread has a core to itself and memory is what counts; on an
# accelerator the host's epoch pipeline is what the device waits on at large steps.
CPU_MMAP_THRESHOLD = 128 << 10
ACCELERATOR_MMAP_THRESHOLD = 4 << 20
# The full softmax's step allocates C×V and V×d temporaries (MBs) at every call; each
# fresh mapping's pages were faulted in and zeroed again, and an epoch of SG with the
# softmax on the embedded corpus took 2× as long at 128 KiB (46–49 s against 25 s at
# 32 MiB, glibc's largest; CBOW 34 s against 26 s; 4 MiB: 30 and 25 s; 2026-11-27, one
# process each, this 2-core machine), and 34–55 s from the CLI, which sets 128 KiB
# first, until the trim threshold moved with it (27 s). Negative sampling and the
# hierarchical softmax, whose temporaries are small, ran as fast at 128 KiB.
SOFTMAX_MMAP_THRESHOLD = 32 << 20


def mmap_threshold(backend: str, objective: str) -> int:
    """The threshold :func:`return_large_buffers` is given for a run of ``objective``
    ("ns", "hs", "softmax") on JAX's ``backend`` ("cpu", "gpu", "tpu")."""
    if backend != "cpu":
        return ACCELERATOR_MMAP_THRESHOLD
    return SOFTMAX_MMAP_THRESHOLD if objective == "softmax" else CPU_MMAP_THRESHOLD


def return_large_buffers(threshold: int = CPU_MMAP_THRESHOLD) -> None:
    """Makes glibc give every buffer of ``threshold`` bytes or more back to the OS when it
    is freed (``mallopt(M_MMAP_THRESHOLD, threshold)``; a no-op with other C libraries).

    By default glibc raises that threshold each time such a buffer is freed, up to
    32 MiB, and later buffers up to that size come from the heap, whose freed pages it
    keeps. The host thread frees a chunk's arrays every chunk, so a CBOW epoch on the
    bench corpus held ~70 MB more at its end than after its first call (223 → 294 MB
    anonymous); with the threshold fixed at 128 KiB, 223 → 233 MB, and the device step
    was as fast (24 alternating timings in one process, 2026-11-26).

    The cost is the host's time: each of a chunk's arrays (256k tokens, up to 2 MiB) is
    then a fresh mapping whose pages the kernel zeroes again, and the epoch pipeline ran
    4× slower (0.13 → 0.53 s an epoch, bench corpus). On a CPU that is hidden (the step
    takes ~6 s an epoch on the other core). On an H100 it halved throughput at large
    steps (CBOW C = 4096: 17.4M against 34–40M words/s), so :func:`w2v_jax.train.train`
    raises the threshold to ``ACCELERATOR_MMAP_THRESHOLD`` (4 MiB, above a chunk's arrays,
    which then reuse the heap) off the CPU; on the CPU that had cost 11–26 MB of peak
    (CBOW race 378 → 389 MB, memory benchmark 312 → 338 MB). Process-wide; the CLI sets
    the CPU value at start, before the corpus is read.
    """
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(-3, threshold)  # M_MMAP_THRESHOLD (glibc's malloc.h)
        # M_TRIM_THRESHOLD: glibc's own rule when it moves the threshold itself. Left at
        # its 128 KiB default, a heap-allocated buffer freed at the top of the heap is
        # handed back at once and faulted in again at the next call: the softmax's
        # temporaries (``SOFTMAX_MMAP_THRESHOLD``) ran as slowly as fresh mappings.
        mallopt(-1, 2 * threshold)
