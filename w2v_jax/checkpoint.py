"""Checkpoints: the training state and where the data stream stands, saved with Orbax.

A checkpoint is one Orbax step directory (``RUN_DIR/checkpoints/<sgd step>/``) with
two items:

- ``state``: ``w_in`` f32[V, d], ``w_out`` f32[V, d], ``step`` (SGD steps taken) and
  ``key`` (the run's PRNG key data). Plain SGD has no optimizer state beyond the step
  and the learning-rate schedule position, which ``position`` fixes.
- ``meta`` (JSON): the :class:`Position` (epoch, blocks of it done, raw words done),
  the config, the vocabulary (words and counts), the corpus path, and a CRC-32 of each
  table so that a corrupt or truncated checkpoint is detected on restore.

Everything the trainer draws is a function of (seed, epoch) for the data and
(key, step) for the negatives, so a state restored at a block boundary continues
exactly as if training had never stopped: on CPU the final vectors are bit-identical.

Saves are asynchronous: the tables are copied to host memory (~2·V·d·4 bytes, tens of
milliseconds) and Orbax writes them in a background thread into a temporary directory
that is renamed only when complete, so a kill during a save leaves the previous
checkpoint as the latest usable one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import gc
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from w2v_jax.config import without_inactive
from w2v_jax.errors import RunLocked, W2VError

CHECKPOINTS = "checkpoints"
CORRUPT = "corrupt-checkpoints"  # where a resumed run moves the unusable ones
LOCK = ".lock"


@dataclasses.dataclass(frozen=True)
class Position:
    """Where training stands in the data: the next block to run is ``block`` of ``epoch``.

    Attributes:
      epoch: 0-based epoch; ``epoch == epochs`` once training is complete.
      block: device blocks (``steps_per_call`` steps each) of that epoch already done.
      words: raw corpus words processed so far, all epochs (for progress and ETA).
      seconds: training time so far, all epochs and earlier runs of a resumed one, on
        the trainer's clock (``Progress.elapsed``: the compile ahead of training and
        the pauses to evaluate or checkpoint not counted); None when unknown (restored
        from a checkpoint written before it was kept).
    """

    epoch: int = 0
    block: int = 0
    words: int = 0
    seconds: float | None = 0.0


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint read back: host arrays, the position and the saved metadata."""

    step: int
    w_in: np.ndarray  # f32[V, d]
    w_out: np.ndarray  # f32[V, d]
    key_data: np.ndarray  # u32[...] the PRNG key's data
    position: Position
    meta: dict[str, Any]
    unusable: tuple[int, ...] = ()  # newer steps that failed to read back, skipped

    def train_state(self):
        """The :class:`w2v_jax.train.TrainState` to continue from."""
        from w2v_jax.train import TrainState

        return TrainState(jnp.asarray(self.w_in), jnp.asarray(self.w_out),
                          jnp.asarray(self.step, jnp.int32),
                          jax.random.wrap_key_data(jnp.asarray(self.key_data)))


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).view(np.uint8).ravel())


def _meta_crc(meta: dict[str, Any]) -> int:
    """CRC-32 of the metadata but its checksums: a damaged digit of the data position
    (valid JSON still) resumed at the wrong place, silently."""
    rest = {k: v for k, v in meta.items() if k != "crc32"}
    return zlib.crc32(json.dumps(rest, sort_keys=True).encode())


def _manager(directory: Path, keep: int | None = None, writer: bool = False):
    """An Orbax manager. A writer (which holds the run's lock, so no other process is
    saving there) removes the temporary directories of saves that were killed; a reader
    leaves them alone, since a training process may be writing one."""
    import orbax.checkpoint as ocp

    multi = {}
    if jax.distributed.is_initialized() and jax.process_count() > 1:
        # In a multi-process run process 0 alone writes (the tables gathered to its host)
        # and each process reads for itself: no manager waits on the other processes.
        me = jax.process_index()
        multi = {"multiprocessing_options": ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me})}
    if writer:  # made here: Orbax will not create it for a subset of processes
        directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                           create=False, cleanup_tmp_directories=writer,
                                           **multi)
    return ocp.CheckpointManager(directory.absolute(), options=options)


class Checkpointer:
    """Saves checkpoints every ``every_words`` raw words and/or ``every_seconds``.

    Args:
      directory: the checkpoint directory (``RUN_DIR/checkpoints``).
      meta: JSON-able data saved in every checkpoint (config, vocabulary, corpus).
      keep: number of most recent checkpoints kept.
      every_words, every_seconds: save intervals; None disables that trigger.
    """

    def __init__(self, directory: str | os.PathLike, meta: dict[str, Any], keep: int = 3,
                 every_words: int | None = None, every_seconds: float | None = None):
        self.directory = Path(directory)
        self._meta = meta
        self._every_words = every_words
        self._every_seconds = every_seconds
        with _orbax_logs_held_back():
            self._mngr = _manager(self.directory, keep, writer=True)
            self.last_step: int | None = self._mngr.latest_step()
        self._last_words = 0
        self._last_time = time.monotonic()
        self.saves = 0
        self.blocking_seconds = 0.0  # time training waited on saves (copies, previous save)

    def due(self, words: int) -> bool:
        """Whether a periodic save is due after ``words`` raw words."""
        return ((self._every_words is not None
                 and words - self._last_words >= self._every_words)
                or (self._every_seconds is not None
                    and time.monotonic() - self._last_time >= self._every_seconds))

    def save(self, state, position: Position) -> int:
        """Starts saving ``state`` (a TrainState) at ``position``; returns its step.

        Blocks only to copy the tables to host memory. A state with NaN or inf is
        refused (W2VError), so the latest checkpoint is always a usable one.
        """
        import orbax.checkpoint as ocp

        step = int(state.step)
        t0 = self._last_time = time.monotonic()
        self._last_words = position.words
        if step == self.last_step:
            return step
        # Copies, not views: the trainer donates these buffers to its next call.
        w_in = np.array(state.w_in, copy=True)
        w_out = np.array(state.w_out, copy=True)
        if not (np.isfinite(w_in).all() and np.isfinite(w_out).all()):
            raise W2VError("training diverged (NaN/inf in the vectors); lower alpha (--alpha)")
        key_data = np.array(jax.random.key_data(state.key), copy=True)
        meta = dict(self._meta, position=dataclasses.asdict(position), step=step,
                    saved_at=time.time())
        meta["crc32"] = {"w_in": _crc(w_in), "w_out": _crc(w_out), "meta": _meta_crc(meta)}
        tree = {"w_in": w_in, "w_out": w_out, "step": np.int64(step), "key": key_data}
        self._mngr.wait_until_finished()  # one save in flight at a time bounds the memory
        if not self._mngr.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta))):
            # Orbax saves no step at or below its latest one; never report one as saved.
            raise W2VError(f"checkpoint at step {step} was not saved: {self.directory} holds "
                           f"step {self._mngr.latest_step()}, which is later; move it away "
                           "or start over with --overwrite")
        self.last_step = step
        self.saves += 1
        self.blocking_seconds += time.monotonic() - t0
        return step

    def wait(self) -> None:
        """Blocks until the save in flight (if any) is on disk."""
        self._mngr.wait_until_finished()

    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()


def _warn_stderr(msg: str) -> None:
    print(f"w2v-jax: warning: {msg}", file=sys.stderr)


@contextlib.contextmanager
def _quiet_if_it_fails():
    """Holds back what is written to stderr (the file descriptor) inside the block, and
    drops it if the block raises: the restore of a corrupt checkpoint leaves Orbax's other
    reads running, and their errors come out as asyncio tracebacks ("Task exception was
    never retrieved", "Event loop is closed") that the one-line warning already covers.
    A restore that succeeds passes on whatever it wrote."""
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
        saved = os.dup(2)
    except OSError:  # no stderr to hold back
        yield
        return
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        gc.collect()  # the abandoned reads' tasks, and their complaints, now
        time.sleep(0.05)
        raise
    finally:
        if sys.stderr is not None:
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if not failed and sys.stderr is not None:
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
        held.close()


@contextlib.contextmanager
def _orbax_logs_held_back():
    """Orbax logs a damaged ``_CHECKPOINT_METADATA`` as an absl ERROR and reads on without
    it (the restore still checks the tables' checksums); what goes wrong is reported by
    the one-line warnings here, so its own lines are held back meanwhile."""
    import logging

    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def restore_latest(directory: str | os.PathLike,
                   warn: Callable[[str], None] = _warn_stderr) -> Restored | None:
    """The newest checkpoint in ``directory`` that reads back intact, or None if there is none.

    A checkpoint that fails to load or whose tables do not match their saved CRC-32 is
    skipped with a one-line warning and the previous one is tried. If checkpoints exist
    but none is usable, raises W2VError.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    with _orbax_logs_held_back():
        return _restore_latest(directory, warn)


def _restore_latest(directory: Path, warn: Callable[[str], None]) -> Restored | None:
    import orbax.checkpoint as ocp

    mngr = _manager(directory)
    try:
        steps = sorted(mngr.all_steps(), reverse=True)
        for n, step in enumerate(steps):
            try:
                with _quiet_if_it_fails():
                    got = mngr.restore(step, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
                tree, meta = got["state"], got["meta"]
                w_in, w_out = np.asarray(tree["w_in"]), np.asarray(tree["w_out"])
                if (_crc(w_in), _crc(w_out)) != (meta["crc32"]["w_in"], meta["crc32"]["w_out"]):
                    raise ValueError("the tables do not match their saved checksums")
                if meta["crc32"].get("meta", _meta_crc(meta)) != _meta_crc(meta):  # older: none
                    raise ValueError("its metadata does not match its saved checksum")
                return Restored(step, w_in, w_out, np.asarray(tree["key"]),
                                Position(**{"seconds": None} | meta["position"]), meta,
                                tuple(steps[:n]))
            except Exception as e:  # noqa: BLE001 - any failure means: try the previous one
                reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                warn(f"checkpoint {directory / str(step)} is unusable ({reason}); "
                     "falling back to the previous one")
        if steps:
            raise W2VError(f"no usable checkpoint in {directory} ({len(steps)} found, all "
                           "corrupt); start over with --overwrite")
        return None
    finally:
        mngr.close()


def saved_config(meta: dict[str, Any]) -> dict[str, Any]:
    """The config in a checkpoint's metadata, with what has changed since pinned as the
    older runs had it: before ``Config.lanes`` existed, runs read the corpus in order;
    before format 2, CBOW with the full softmax defaulted to 512 windows a step."""
    config = {"lanes": 1} | meta["config"]
    if (meta.get("format", 1) < 2 and config.get("batch_size") is None
            and config.get("sg") == 0 and config.get("objective") == "softmax"):
        config["batch_size"] = 512
    # Settings that could not act (hs with negative=10, say) were accepted then, and are
    # refused now: back to their defaults, which is how the run trained.
    return without_inactive(config)


def latest_meta(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata of the newest checkpoint in ``directory`` that has readable metadata
    (the tables are not read), or None if there is none."""
    import orbax.checkpoint as ocp

    steps = checkpoint_steps(directory)
    if not steps:
        return None
    with _orbax_logs_held_back():
        mngr = _manager(Path(directory))
        try:
            for step in steps:
                try:
                    with _quiet_if_it_fails():
                        got = mngr.restore(step, args=ocp.args.Composite(
                            meta=ocp.args.JsonRestore()))
                    return got["meta"]
                except Exception:  # noqa: BLE001 - unreadable: the previous one
                    continue
            return None
        finally:
            mngr.close()


def checkpoint_steps(directory: str | os.PathLike) -> list[int]:
    """The steps of the checkpoints in ``directory`` (its complete Orbax step directories;
    a killed save's temporary directory is not one), newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()),
                  reverse=True)


def set_aside(directory: str | os.PathLike, steps: Sequence[int]) -> Path:
    """Moves the checkpoints ``steps`` out of ``directory`` into ``CORRUPT`` beside it.

    A resumed run does this with the newer checkpoints that failed to read back: Orbax
    saves no step at or below the latest one it finds, so left in place they would
    block every later save. Kept, not deleted, for whoever wants to look at them.
    """
    directory = Path(directory)
    aside = directory.parent / CORRUPT
    aside.mkdir(exist_ok=True)
    for step in steps:
        target = aside / str(step)
        if target.exists():
            target = aside / f"{step}.{int(time.time())}"
        os.replace(directory / str(step), target)
    return aside


class RunLock:
    """An exclusive lock on a run directory, held while a process trains into it.

    Uses ``flock`` on ``RUN_DIR/.lock``: the OS releases it when the process dies, so a
    killed run never leaves a stale lock behind.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK
        self._f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._f.seek(0)
            holder = self._f.read().strip() or "unknown"
            self._f.close()
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLocked(f"another w2v-jax process (pid {holder}) is training into "
                               f"{run_dir}; wait for it or choose another --out") from None
            raise
        self._f.seek(0)
        self._f.truncate()
        self._f.write(str(os.getpid()))
        self._f.flush()

    def release(self) -> None:
        if not self._f.closed:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["CHECKPOINTS", "CORRUPT", "Checkpointer", "Position", "Restored", "RunLock",
           "checkpoint_steps", "latest_meta", "restore_latest", "saved_config", "set_aside"]
