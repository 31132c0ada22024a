"""Peak resident memory of the current process, for benchmark children.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not the child's own peak on Linux: a process
started with fork + exec keeps the high-water mark its parent had at the fork, so every
peer of a benchmark driver that had loaded a corpus or evaluated vectors read at least
the driver's peak. The kernel's ``VmHWM`` belongs to the address space, which exec
replaces, so it starts afresh in the child.

Peak RSS counts file-backed pages too: the shared libraries' code and read-only data a
process has touched (jaxlib's alone is ~135 MB in a training run), which the kernel can
drop and read back at will. :func:`run_watched` also reports the peaks of the two parts,
anonymous memory (the process's own heap and arrays, which only it can free) and
file-backed, sampled by the driver from outside so that the child runs undisturbed.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import threading


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


def _status_mb(pid: int, keys: tuple[str, ...]) -> dict[str, float] | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(line.split()[1]) / 1024 for line in f
                    for k in keys if line.startswith(k + ":")}
    except (OSError, ValueError):
        return None  # gone, or not Linux


def run_watched(cmd: list[str], interval: float = 0.02
                ) -> tuple[subprocess.CompletedProcess, dict[str, float]]:
    """Runs ``cmd`` to the end, capturing its output as text, while sampling its memory.

    Returns (the completed process, {"peak_anon_mb", "peak_file_mb"}): the largest
    ``RssAnon`` and ``RssFile`` seen, in MiB, read from ``/proc/PID/status`` every
    ``interval`` seconds (a shorter spike can fall between two reads; the dict is empty
    where there is no ``/proc``). The two peaks need not fall at the same moment, so
    they can add up to more than the peak RSS.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[str, float] = {}
    done = threading.Event()

    def watch():
        while not done.is_set():
            now = _status_mb(proc.pid, ("RssAnon", "RssFile"))
            for key, name in (("RssAnon", "peak_anon_mb"), ("RssFile", "peak_file_mb")):
                if now and key in now:
                    peaks[name] = max(peaks.get(name, 0.0), now[key])
            done.wait(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate()
    except BaseException:  # Ctrl-C in the driver: take the child down too
        proc.kill()
        proc.wait()
        raise
    finally:
        done.set()
        watcher.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peaks
