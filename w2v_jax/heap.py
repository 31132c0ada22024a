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


MMAP_THRESHOLD = 4 << 20  # bytes: a buffer this large gets its own mapping


def return_large_buffers() -> None:
    """Makes glibc give every buffer of ``MMAP_THRESHOLD`` (4 MiB) or more back to the OS
    when it is freed (``mallopt(M_MMAP_THRESHOLD, 4 MiB)``; a no-op with other C libraries).

    By default glibc raises that threshold each time such a buffer is freed, up to
    32 MiB, and later buffers up to that size come from the heap, whose freed pages it
    keeps. The host thread frees a chunk's arrays every chunk, so a CBOW epoch on the
    bench corpus held ~70 MB more at its end than after its first call (223 → 294 MB
    anonymous). Why 4 MiB and not lower: a chunk's arrays (256k tokens, up to 2 MiB each)
    then come from the heap and reuse the pages the last chunk freed. At 128 KiB each was
    a fresh mapping whose pages the kernel zeroed again, and the host's epoch pipeline
    ran 4× slower (0.13 → 0.53 s an epoch, bench corpus), which bounded an H100 at large
    steps (CBOW C = 4096: 17.4M against 28.1M words/s). The CBOW race peaked at 386 MB
    against 378 at 128 KiB (2026-11-26). Process-wide and idempotent: the CLI sets it at
    start and :func:`train` when it begins.
    """
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (glibc's malloc.h)
