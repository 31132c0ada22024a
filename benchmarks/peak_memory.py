"""Peak resident memory of the current process, for benchmark children.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not the child's own peak on Linux: a process
started with fork + exec keeps the high-water mark its parent had at the fork, so every
peer of a benchmark driver that had loaded a corpus or evaluated vectors read at least
the driver's peak. The kernel's ``VmHWM`` belongs to the address space, which exec
replaces, so it starts afresh in the child.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB (Linux: VmHWM; elsewhere ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS
