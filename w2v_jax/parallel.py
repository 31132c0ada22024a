"""Data-parallel training over devices and hosts, with ``jax.sharding`` and ``shard_map``.

A 1-D ``Mesh`` of all devices (axis ``"data"``; across hosts after
``jax.distributed.initialize``). Every SGD step, each device takes its own C centres of
the stream (device d the d-th group of the step's D·C), computes its updates from the
same old tables, and the updates of all devices are combined exactly: the step equals
one step of D·C centres on one device (negatives aside: each device draws its own).

The embedding tables are either

- ``replicated``: every device holds W_in and W_out whole; rows are gathered locally,
  and each device adds every device's sparse updates (``all_gather`` of the row ids and
  deltas), so the replicas stay identical; or
- ``sharded`` along the vocabulary: device d holds rows d·V/D … (d+1)·V/D − 1 of each
  table (padded to a multiple of D), so the tables may be D times larger than one
  device's memory. A row lookup gathers every device's ids, each device answers for the
  rows it owns and a ``psum_scatter`` returns each device its rows; each device then
  adds the updates of the rows it owns.

Both modes compute the same thing (tests check that they agree). The full softmax's
dense W_out update needs the whole table, so it runs replicated only.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from w2v_jax.config import Config
from w2v_jax.errors import W2VError
from w2v_jax.train import Tables, TrainState, Update, draw_negatives, scan_steps

AXIS = "data"


@dataclasses.dataclass(frozen=True)
class Parallel:
    """Where training runs: a 1-D device mesh and how the tables are laid out on it.

    Attributes:
      mesh: ``Mesh`` of D devices along axis ``"data"`` (all processes' devices).
      tables: "replicated" or "sharded" (along the vocabulary).
      vocab_size: V, the real number of rows (sharded tables are padded to a multiple of D).
    """

    mesh: Mesh
    tables: str
    vocab_size: int

    @property
    def devices(self) -> int:
        return self.mesh.size

    @property
    def local_devices(self) -> int:
        """Devices of the mesh that this process feeds."""
        return sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)

    @property
    def rows_per_device(self) -> int:
        return -(-self.vocab_size // self.devices)

    @property
    def table_rows(self) -> int:
        """Rows of each table as laid out on the mesh (padded when sharded)."""
        return self.vocab_size if self.tables == "replicated" else self.rows_per_device * self.devices

    @property
    def table_spec(self) -> P:
        return P() if self.tables == "replicated" else P(AXIS, None)


def make_parallel(cfg: Config, vocab_size: int) -> Parallel | None:
    """A :class:`Parallel` over the first ``cfg.devices`` devices, tables laid out as
    ``cfg.tables``.

    Returns None for a single device in a single process: the plain one-device trainer
    (``w2v_jax.train.run_steps``) is then used.
    """
    available = jax.devices()
    n = cfg.devices
    if n > len(available):
        raise W2VError(f"--devices {n} asked for, but {len(available)} device(s) are available "
                       f"({available[0].platform}); on CPU, set XLA_FLAGS="
                       f"--xla_force_host_platform_device_count={n} to split the host")
    if jax.process_count() > 1 and n != len(available):
        raise W2VError(f"a multi-process run trains on every device of every process: pass "
                       f"--devices {len(available)}")
    if n == 1 and jax.process_count() == 1:
        return None
    return Parallel(Mesh(np.asarray(available[:n]), (AXIS,)), cfg.tables, vocab_size)


class ShardedTables(Tables):
    """:class:`w2v_jax.train.Tables` inside ``shard_map``: collective reads and updates."""

    def __init__(self, params, par: Parallel):
        super().__init__(params, par.vocab_size)
        self.par = par

    def _owned(self, ids: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(local row index, owned?) of global ids, for this device's shard."""
        local = ids - jax.lax.axis_index(AXIS) * self.par.rows_per_device
        return local, (local >= 0) & (local < self.par.rows_per_device)

    def rows(self, which: int, ids: jax.Array) -> jax.Array:
        table = self.params[which]
        if self.par.tables == "replicated":
            return table[ids]
        every = jax.lax.all_gather(ids.reshape(-1), AXIS)  # i32[D, n]: all devices' ids
        local, owned = self._owned(every)
        mine = jnp.where(owned[..., None], table[jnp.where(owned, local, 0)], 0.0)
        got = jax.lax.psum_scatter(mine, AXIS, scatter_dimension=0)  # f[n, d]: my ids' rows
        return got.reshape(*ids.shape, table.shape[1])

    def whole(self, which: int) -> jax.Array:
        if self.par.tables != "replicated":
            raise NotImplementedError("a whole table is only local when tables are replicated")
        return self.params[which]

    def apply(self, updates: list[Update]) -> tuple[jax.Array, jax.Array]:
        combined = []
        for which, ids, delta in updates:
            if ids is None:  # dense (replicated only): every device's delta, summed
                combined.append((which, None, jax.lax.psum(delta, AXIS)))
                continue
            ids = jax.lax.all_gather(ids, AXIS, tiled=True)
            delta = jax.lax.all_gather(delta, AXIS, tiled=True)
            if self.par.tables == "sharded":  # keep the rows this device owns
                local, owned = self._owned(ids)
                ids = jnp.where(owned, local, self.par.rows_per_device)  # out of range: dropped
            combined.append((which, ids, delta))
        params = list(self.params)
        for which, ids, delta in combined:
            params[which] = (params[which] + delta if ids is None
                             else params[which].at[ids].add(delta, mode="drop"))
        return params[0], params[1]


@functools.partial(jax.jit, static_argnames=("cfg", "par"), donate_argnames=("state",))
def run_steps_parallel(state: TrainState, aux: Any, block: dict[str, jax.Array], cfg: Config,
                       par: Parallel) -> tuple[TrainState, tuple[jax.Array, jax.Array]]:
    """``w2v_jax.train.run_steps`` over the devices of ``par.mesh``.

    Args:
      state: TrainState whose tables are laid out by :func:`place_state` (donated).
      block: as for ``run_steps`` with a device axis after the step axis (``tok``
        i32[T, D, C + 2W], ``reach`` i32[T, D, C], ``lr`` f32[T, D]), sharded along it.
    Returns:
      (new state, (summed loss, number of examples), both summed over devices).
    """
    t = block["lr"].shape[0]
    spec = par.table_spec

    def local(w_in, w_out, key, step, aux, block):
        ex = {k: v[:, 0] for k, v in block.items()}  # this device's slice of every step
        dev_key = jax.random.fold_in(jax.random.fold_in(key, step), jax.lax.axis_index(AXIS))
        negs = draw_negatives(dev_key, aux, cfg, t)
        xs = ex if negs is None else dict(ex, negs=negs)
        (w_in, w_out), (loss, count) = scan_steps(
            lambda p: ShardedTables(p, par), (w_in, w_out), aux, xs, cfg)
        return w_in, w_out, jax.lax.psum(loss, AXIS), jax.lax.psum(count, AXIS)

    run = jax.shard_map(local, mesh=par.mesh,
                        in_specs=(spec, spec, P(), P(), P(), P(None, AXIS)),
                        out_specs=(spec, spec, P(), P()), check_vma=False)
    w_in, w_out, loss, count = run(state.w_in, state.w_out, state.key, state.step, aux, block)
    return TrainState(w_in, w_out, state.step + t, state.key), (loss, count)


def _global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array from a host array every process holds whole."""
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def place_state(state: TrainState, par: Parallel) -> TrainState:
    """Lays a TrainState's tables out on the mesh (padding sharded ones), replicates the rest."""
    pad = par.table_rows - par.vocab_size

    def table(x):
        x = np.asarray(x)
        if pad:
            x = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)])
        return _global(x, NamedSharding(par.mesh, par.table_spec))

    rep = NamedSharding(par.mesh, P())
    key_data = _global(np.asarray(jax.random.key_data(state.key)), rep)
    return TrainState(table(state.w_in), table(state.w_out),
                      _global(np.asarray(state.step), rep), jax.random.wrap_key_data(key_data))


def place_block(block: dict[str, np.ndarray], par: Parallel) -> dict[str, jax.Array]:
    """This process's part of a block (device axis: its local devices) as global arrays."""
    sharding = NamedSharding(par.mesh, P(None, AXIS))
    out = {}
    for k, v in block.items():
        shape = (v.shape[0], par.devices, *v.shape[2:])
        out[k] = jax.make_array_from_process_local_data(sharding, v, shape)
    return out


def host_state(state: TrainState, par: Parallel | None) -> TrainState:
    """The state with its tables as host arrays f32[V, d] (padding removed), on every process."""
    if par is None:
        return state
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        def fetch(x):
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    else:
        fetch = np.asarray
    v = par.vocab_size
    return TrainState(fetch(state.w_in)[:v], fetch(state.w_out)[:v],
                      np.asarray(fetch(state.step)), state.key)


def any_process(*flags: bool) -> tuple[bool, ...]:
    """Each flag or-ed over all processes (a host-side collective every process calls)."""
    if jax.process_count() == 1:
        return flags
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(np.asarray(flags, np.int32)))
    return tuple(bool(x) for x in every.reshape(-1, len(flags)).any(axis=0))


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """``jax.distributed.initialize`` from arguments or the environment.

    ``W2V_JAX_COORDINATOR`` (host:port of process 0), ``W2V_JAX_NUM_PROCESSES`` and
    ``W2V_JAX_PROCESS_ID`` fill what is not given; with none of them set this does
    nothing (a single process). On a cluster JAX knows (Slurm, Cloud TPU), pass
    ``coordinator="auto"`` to let JAX detect everything.
    """
    env = os.environ
    coordinator = coordinator or env.get("W2V_JAX_COORDINATOR")
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise W2VError("--num-processes and --process-id need --coordinator HOST:PORT (or "
                           "W2V_JAX_COORDINATOR); without it training is one process")
        return
    if coordinator == "auto":
        jax.distributed.initialize()
        return
    if num_processes is None:
        num_processes = _env_int("W2V_JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("W2V_JAX_PROCESS_ID")
    if num_processes is None or process_id is None:
        raise W2VError("a multi-process run needs --num-processes and --process-id (or "
                       "W2V_JAX_NUM_PROCESSES and W2V_JAX_PROCESS_ID) with --coordinator")
    if num_processes < 1:
        raise W2VError(f"--num-processes must be at least 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise W2VError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    _check_address(coordinator)
    jax.distributed.initialize(coordinator, num_processes, process_id)


def _check_address(coordinator: str) -> None:
    """Refuses what is not HOST:PORT before JAX sees it: its parser indexes a missing port
    and its gRPC server crashes the process on a port that is not a number."""
    host, sep, port = coordinator.rpartition(":")
    if not (sep and host.strip("[]") and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise W2VError(f"--coordinator must be HOST:PORT with a port in 1..65535 (e.g. "
                       f"10.0.0.1:1234, [::1]:1234) or 'auto', got {coordinator!r}")


def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise W2VError(f"{name} must be an integer, got {v!r}") from None


__all__ = ["Parallel", "ShardedTables", "any_process", "host_state",
           "initialize_distributed", "make_parallel", "place_block", "place_state",
           "run_steps_parallel"]
