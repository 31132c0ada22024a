"""Experiments: named runs and sweeps as plain data, run into one directory, summarised.

An experiment is a TOML file::

    name = "negatives"
    description = "How many negatives does SGNS need?"
    corpus = "bench"            # "embedded" (default), "bench" (../shared/data), or a path
    seeds = [0, 1]              # optional; each run once per seed
    eval_each_epoch = true      # analogy and WordSim-353 after every epoch (for the plots)

    [base]                      # Config fields shared by every run
    sg = 1
    epochs = 3

    [[runs]]                    # the runs to compare; each may set any Config field
    name = "ns5"
    negative = 5

    [sweep]                     # optional grid, crossed with the runs
    window = [2, 5, 10]

    [scaling]                   # optional: time per pair vs vocabulary size (w2v_jax.scaling)
    vocab_sizes = [1000, 4000, 16000]
    objectives = ["softmax", "ns", "hs"]

Every run trains into ``OUT/<run name>/`` with :func:`w2v_jax.run.train_run`
(checkpoints, metrics.jsonl, vectors.bin), then writes ``scores.json``. A finished run
is skipped and an interrupted one resumed, so re-running an experiment only does what
is missing. ``summarise`` and ``plot`` turn the run directories into ``summary.md``,
``summary.csv`` and PNG plots.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from w2v_jax.checkpoint import CHECKPOINTS, checkpoint_steps, latest_meta, saved_config
from w2v_jax.config import NEGATIVE_SAMPLING, OBJECTIVES, Config, inert, without_inactive
from w2v_jax.corpus import embedded_corpus_path
from w2v_jax.errors import RunLocked, W2VError, memory_advice, out_of_memory

BENCH_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bench-corpus.txt.gz"
SCORES = "scores.json"
FAILED = "failed.json"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment: its directory name, its group (the run it
    came from, before sweep values and seeds) and its config."""

    name: str
    group: str
    config: Config
    varied: dict[str, Any]  # the sweep values and seed that made it
    # Shared settings ([base], --set, the sweep) that cannot act on this run and were left
    # at their defaults (``config.inert``): the runner names them in its log.
    unused: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    corpus: str
    base: dict[str, Any]
    runs: list[dict[str, Any]]
    sweep: dict[str, list[Any]]
    seeds: list[int] | None
    eval_each_epoch: bool
    scaling: dict[str, Any] | None = None  # {"vocab_sizes": [...], "objectives": [...], ...}
    equal_time_seconds: float | None = None  # budget of the equal-training-time table


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Reads an experiment TOML file (see the module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise W2VError(f"cannot read experiment {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise W2VError(f"experiment {path} is not valid TOML: {e}") from None
    known = {"name", "description", "corpus", "base", "runs", "sweep", "seeds", "eval_each_epoch",
             "scaling", "equal_time_seconds"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise W2VError(f"experiment {path}: unknown key(s) {', '.join(unknown)}; "
                       f"known: {', '.join(sorted(known))}")
    _check_types(data, f"experiment {path}")
    if "name" in data:  # a path below runs/ and --results: nested, but not out of them
        name = data["name"]
        parts = name.strip("/").split("/") if isinstance(name, str) else []
        if (not isinstance(name, str) or name.startswith("/")
                or any(p in ("", ".", "..") for p in parts)):
            raise W2VError(f"experiment {path}: name {name!r} must be a relative path without "
                           "'.' or '..' parts (its runs go to runs/<name>, and --results "
                           "<DIR>/<name>)")
    runs = data.get("runs") or [{"name": "run"}]
    for i, r in enumerate(runs):
        if "name" not in r:
            raise W2VError(f"experiment {path}: run {i + 1} has no name")
        check_run_name(r["name"], f"experiment {path}: run {i + 1}")
    return Experiment(name=data.get("name", path.stem), description=data.get("description", ""),
                      corpus=data.get("corpus", "embedded"), base=data.get("base", {}),
                      runs=runs, sweep=data.get("sweep", {}), seeds=data.get("seeds"),
                      eval_each_epoch=data.get("eval_each_epoch", True),
                      scaling=data.get("scaling"),
                      equal_time_seconds=data.get("equal_time_seconds"))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(data: dict[str, Any], where: str) -> None:
    """Refuses, before anything trains, a value of the wrong kind (a scalar where a list
    belongs, a string for a number or a flag: ``bool("false")`` is True)."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise W2VError(f"{where}: {msg}")

    for key in ("name", "description", "corpus"):
        need(isinstance(data.get(key, ""), str), f"{key} must be a string, got {data.get(key)!r}")
    need(isinstance(data.get("base", {}), dict), "base must be a table: [base]")
    runs = data.get("runs", [])
    need(isinstance(runs, list) and all(isinstance(r, dict) for r in runs),
         "runs must be an array of tables: one [[runs]] header per run")
    sweep = data.get("sweep", {})
    need(isinstance(sweep, dict), "sweep must be a table: [sweep] with FIELD = [V1, V2, ...]")
    for k, v in sweep.items():
        need(isinstance(v, list) and len(v) > 0,
             f"sweep {k} must be a non-empty list of values, got {v!r}")
    seeds = data.get("seeds")
    need(seeds is None or (isinstance(seeds, list) and all(_is_int(x) for x in seeds)),
         f"seeds must be a list of integers, got {seeds!r}")
    need(isinstance(data.get("eval_each_epoch", True), bool),
         f"eval_each_epoch must be true or false, got {data.get('eval_each_epoch')!r}")
    t = data.get("equal_time_seconds")
    need(t is None or (isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0),
         f"equal_time_seconds must be a positive number, got {t!r}")
    scaling = data.get("scaling")
    if scaling is not None:
        need(isinstance(scaling, dict), "scaling must be a table: [scaling]")
        unknown = sorted(set(scaling) - {"vocab_sizes", "objectives", "calls", "steps_per_call"})
        need(not unknown, f"scaling: unknown key(s) {', '.join(unknown)}; known: calls, "
                          "objectives, steps_per_call, vocab_sizes")
        sizes = scaling.get("vocab_sizes")
        need(isinstance(sizes, list) and len(sizes) > 1 and all(_is_int(v) and v > 1 for v in sizes),
             f"scaling vocab_sizes must list two or more vocabulary sizes, got {sizes!r}")
        objectives = scaling.get("objectives", [])
        need(isinstance(objectives, list) and set(objectives) <= set(OBJECTIVES),
             f"scaling objectives must be a list of {', '.join(OBJECTIVES)}, got {objectives!r}")


def check_run_name(name: Any, where: str) -> None:
    """A run trains into OUT/<name>: a name must be one plain directory name."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name \
            or "\\" in name or name.startswith("."):
        raise W2VError(f"{where}: run name {name!r} must be a non-empty directory name "
                       "without '/' (the run trains into OUT/<name>)")


def parse_value(text: str) -> Any:
    """A command-line value: int, float, None, or the string itself."""
    if text.lower() in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sweep(items: list[str]) -> dict[str, list[Any]]:
    """``["negative=1,2,5", "window=2,5"]`` → ``{"negative": [1, 2, 5], "window": [2, 5]}``."""
    sweep = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise W2VError(f"--sweep {item!r}: expected FIELD=V1,V2,...")
        sweep[key.strip().replace("-", "_")] = [parse_value(v) for v in values.split(",")]
    return sweep


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]`` (``--seeds``)."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise W2VError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["epochs=1", "alpha=0.01"]`` → ``{"epochs": 1, "alpha": 0.01}`` (``--set``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise W2VError(f"--set {item!r}: expected FIELD=V")
        if "," in value:
            raise W2VError(f"--set {item!r}: one value per field; for several, use --sweep")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def expand(exp: Experiment, sweep: dict[str, list[Any]] | None = None,
           seeds: list[int] | None = None,
           overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """The runs of an experiment: each run × the sweep grid × the seeds.

    ``sweep`` and ``seeds`` (command line) replace the file's; ``overrides`` set fields
    of every run (after the runs' own fields, before the sweep values). A setting from
    [base], ``overrides`` or the sweep that cannot act on a run (``negative`` on an "hs"
    run, say) is left at its default there, and a sweep over it does not repeat that run;
    one in the run's own table is an error.
    """
    sweep = exp.sweep if sweep is None else sweep
    seeds = exp.seeds if seeds is None else seeds
    fields = {f.name for f in dataclasses.fields(Config)}
    for key in list(sweep) + list(exp.base) + list(overrides or {}):
        if key not in fields:
            raise W2VError(f"{key!r} is not a config field; fields: {', '.join(sorted(fields))}")
    # Grid points as positions in each value list, so that a value listed twice stays two
    # points (and meets the duplicate-name error) while an idle key's points merge.
    grid = list(itertools.product(*(range(len(v)) for v in sweep.values())))
    specs, repeats = [], set()
    for run in exp.runs:
        own = {k: v for k, v in run.items() if k != "name"}
        for at in grid:
            point = {k: sweep[k][i] for k, i in zip(sweep, at)}
            for s_at, seed in enumerate(seeds or [None]):
                varied = dict(point) | ({} if seed is None else {"seed": seed})
                given = dict(exp.base) | own | (overrides or {}) | varied
                hyper = without_inactive(given, keep=[k for k in own if k not in varied])
                idle = set(varied) & inert(hyper)
                varied = {k: v for k, v in varied.items() if k not in idle}
                try:
                    config = Config.from_dict(hyper)
                except W2VError as e:
                    raise W2VError(f"run {run['name']} {varied}: {e}") from None
                suffix = "".join(f"__{k}={v}" for k, v in varied.items())
                if idle:  # the same run as another point of the sweep: trained once
                    where = (run["name"], s_at, tuple(i for k, i in zip(sweep, at)
                                                      if k not in idle))
                    if where in repeats:
                        continue
                    repeats.add(where)
                unused = tuple(sorted(idle | {k for k in given if given[k] != hyper[k]}))
                specs.append(RunSpec(f"{run['name']}{suffix}", run["name"], config, varied,
                                     unused))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise W2VError(f"two runs would train into {twice[0]}: give each [[runs]] entry its "
                       "own name, and list each seed and sweep value once")
    return specs


def corpus_path(exp: Experiment, override: str | None = None) -> Path:
    """``"embedded"`` → the package's corpus, ``"bench"`` → ../shared/data's, else a path."""
    which = override or exp.corpus
    if which == "embedded":
        return embedded_corpus_path()
    if which == "bench":
        if not BENCH_CORPUS.exists():
            raise W2VError(f"the bench corpus is not at {BENCH_CORPUS}; pass --corpus PATH")
        return BENCH_CORPUS
    path = Path(which)
    if not path.exists():  # refused once here, not by each run in turn
        raise W2VError(f"corpus file {path} does not exist; check the path")
    if not path.is_file():  # a directory, or a pipe, which only the first run could read
        raise W2VError(f"corpus path {path} is not a regular file; pass a text file (each "
                       "run reads it again)")
    return path


def run_experiment(exp: Experiment, specs: list[RunSpec], out_dir: str | os.PathLike,
                   corpus: str | os.PathLike, log: Callable[[str], None] = print,
                   on_progress=None, should_stop=None) -> list[dict[str, Any]]:
    """Trains every run that is not finished (resuming interrupted ones) and scores it.

    A run that fails with a W2VError (divergence, say) is logged and recorded in its
    ``failed.json``; the others go on. Returns the records of the finished runs (see
    :func:`load_results`).
    """
    from w2v_jax.run import train_run

    out = Path(out_dir)
    for spec in specs:  # every refusal before anything is written
        _check_same_config(out / spec.name, spec, corpus)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "experiment.json").write_text(json.dumps(
            {"name": exp.name, "description": exp.description, "corpus": str(corpus),
             "runs": [{"name": s.name, "group": s.group, "varied": s.varied,
                       "config": s.config.to_dict()} for s in specs]}, indent=2) + "\n")
    except OSError as e:
        raise W2VError(f"cannot write to experiment directory {out}: {e.strerror or e}; "
                       "choose another --out") from None
    for i, spec in enumerate(specs, 1):
        run_dir = out / spec.name
        if _scores(run_dir) is not None:
            (run_dir / FAILED).unlink(missing_ok=True)  # one a lost lock race left behind
            log(f"[{i}/{len(specs)}] {spec.name}: done already, skipped")
            continue
        resume = bool(checkpoint_steps(run_dir / CHECKPOINTS))
        unused = (f"; {', '.join(spec.unused)} cannot act on it, left at "
                  f"{'its default' if len(spec.unused) == 1 else 'their defaults'}"
                  if spec.unused else "")
        log(f"[{i}/{len(specs)}] {spec.name}: {'resuming' if resume else 'training'} "
            f"({spec.config.objective}, {'SG' if spec.config.sg else 'CBOW'}{unused})")
        (run_dir / FAILED).unlink(missing_ok=True)
        try:
            if not (run_dir / "vectors.bin").exists():
                train_run(run_dir, None if resume else spec.config, None if resume else corpus,
                          resume=resume, overwrite=not resume,  # a run killed before
                          eval_each_epoch=exp.eval_each_epoch,  # its first checkpoint restarts
                          on_progress=on_progress, should_stop=should_stop, log=log)
        except RunLocked:  # another invocation is training it: not a failure of the run
            log(f"[{i}/{len(specs)}] {spec.name}: another process is training it; skipped")
            continue
        except Exception as e:  # e.g. divergence: record it, go on with the other runs
            if not isinstance(e, W2VError) and not out_of_memory(e):
                raise  # a bug: the runner stops
            error = str(e) if isinstance(e, W2VError) else memory_advice(e, flags=False)
            log(f"[{i}/{len(specs)}] {spec.name}: failed: {error} (here: to train this run "
                f"again, remove {run_dir} and run the same command)")
            run_dir.mkdir(exist_ok=True)  # one that failed before it began is removed
            (run_dir / FAILED).write_text(json.dumps({"error": error}) + "\n")
            continue
        score_run(run_dir)
    return load_results(out, [s.name for s in specs])


def _scores(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's scores, or None: not scored yet, or its scores.json is damaged
    (the run is then scored again from its vectors)."""
    try:
        return json.loads((run_dir / SCORES).read_text())
    except (OSError, ValueError):
        return None


def unfinished(out_dir: str | os.PathLike, names: list[str]) -> list[str]:
    """The runs among ``names`` with neither scores nor a recorded failure: those another
    process was training when this one came to them."""
    out = Path(out_dir)
    return [n for n in names
            if _scores(out / n) is None and not (out / n / FAILED).exists()]


def failures(out_dir: str | os.PathLike, names: list[str] | None = None) -> dict[str, str]:
    """Run name → error message of the runs that failed (see :func:`run_experiment`);
    a run that has finished since (its scores written) is not one of them."""
    found = {}
    for p in sorted(Path(out_dir).glob(f"*/{FAILED}")):
        name = p.parent.name
        if (names is not None and name not in names) or _scores(p.parent) is not None:
            continue
        try:
            found[name] = json.loads(p.read_text())["error"]
        except (OSError, ValueError, KeyError, TypeError):
            found[name] = f"(its {FAILED} is unreadable)"
    return found


def _check_same_config(run_dir: Path, spec: RunSpec, corpus: str | os.PathLike) -> None:
    """A run directory left by an earlier invocation must hold the same config: skipping a
    finished run, or resuming an interrupted or failed one (which goes on with its
    checkpoint's config), whose file has since changed would mix results silently."""
    from w2v_jax.run import _same_source

    path = run_dir / "config.json"
    if path.exists():
        try:
            saved, what = json.loads(path.read_text()), "run"
            saved_corpus = saved.get("corpus")
            saved = without_inactive(saved)  # as the run trained (older code kept them)
        except (OSError, ValueError, AttributeError):
            raise W2VError(f"{path} is damaged; delete {run_dir} to train run {spec.name} "
                           "again") from None
    else:
        meta, what = latest_meta(run_dir / CHECKPOINTS), "unfinished run"
        if meta is None:
            return
        saved, saved_corpus = saved_config(meta), meta.get("corpus")
    if saved_corpus is not None and not _same_source(saved_corpus, str(corpus)):
        raise W2VError(f"{run_dir} holds {what} {spec.name} on another corpus ({saved_corpus}, "
                       f"not {corpus}); delete it or choose another --out")
    diff = {k: (saved.get(k), v) for k, v in spec.config.to_dict().items() if saved.get(k) != v}
    if diff:
        raise W2VError(f"{run_dir} holds {what} {spec.name} with another config "
                       f"(field: (old, new) {diff}); delete it or choose another --out")


def score_run(run_dir: Path) -> dict[str, Any]:
    """Scores a finished run's vectors (analogy 3CosAdd at 30k, WordSim-353) into scores.json."""
    from w2v_jax.evaluate import standard_scores
    from w2v_jax.vectors import KeyedVectors

    sc = standard_scores(KeyedVectors.load_word2vec_format(run_dir / "vectors.bin", binary=True))
    scores = {"analogy": sc["analogy"], "analogy_answered": sc["analogy_answered"],
              "semantic": sc["analogy_semantic"], "syntactic": sc["analogy_syntactic"],
              "wordsim": sc["wordsim"], "wordsim_covered": sc["wordsim_covered"]}
    tmp = run_dir / (SCORES + ".tmp")
    tmp.write_text(json.dumps(scores, indent=2) + "\n")
    tmp.replace(run_dir / SCORES)
    return scores


def load_results(out_dir: str | os.PathLike, names: list[str] | None = None) -> list[dict]:
    """Reads run directories back: config, scores, the metrics stream and its summary."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / "experiment.json").read_text())
    except (OSError, ValueError) as e:
        raise W2VError(f"cannot read {out / 'experiment.json'} ({e}); run the experiment "
                       "again to rewrite it") from None
    results = []
    for r in meta["runs"]:
        if names is not None and r["name"] not in names:
            continue
        run_dir = out / r["name"]
        scores = _scores(run_dir)
        if scores is None:
            continue
        records = _current_records(run_dir / "metrics.jsonl")
        done = [x for x in records if x.get("event") == "done"]
        results.append(r | {
            "scores": scores,
            "progress": [x for x in records if "loss" in x and "event" not in x],
            "evals": [x for x in records if x.get("event") == "eval"],
            "done": done[-1] if done else {}})
    return results


def _current_records(path: Path) -> list[dict]:
    """The records of a run's metrics file as of its final history: a resumed run went
    back to its checkpoint, so what an earlier process logged past that point (after the
    last checkpoint of a killed run) is dropped at each resume marker."""
    records: list[dict] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:  # deleted: the run's scores stand, without its curves
        lines = []
    for line in lines:
        try:
            x = json.loads(line)
        except ValueError:  # blank, or cut short by a killed process or a full disk
            continue
        if not isinstance(x, dict):
            continue
        if x.get("event") == "resume":  # progress and eval records past the checkpoint
            records = [r for r in records
                       if r.get("event") not in (None, "eval") or r["words"] <= x["words"]]
        records.append(x)
    return records


# ----------------------------------------------------------------------------------
# Summary table and plots
# ----------------------------------------------------------------------------------

_MEASURED = ("words/s", "step ms", "final loss", "analogy", "WordSim-353", "train s")
_COLUMNS = ["objective", "model", "negative", "window", "vector_size", "words/s",
            "step ms", "final loss", "analogy", "WordSim-353", "train s"]


def _run_seconds(done: dict) -> float | None:
    """A finished run's training seconds on the trainer's clock, across resumes (runs
    logged before that was recorded: the last process's wall-clock)."""
    return done.get("elapsed") or done.get("train_seconds")


def _row(r: dict) -> dict[str, Any]:
    cfg, done, progress = r["config"], r["done"], r["progress"]
    train_s = _run_seconds(done)
    words, n_steps = done.get("total_words"), done.get("total_steps")
    if done.get("elapsed") is None:  # older record, or clock unknown: this process's words, steps
        words, n_steps = None, done.get("steps")
    return {"objective": cfg["objective"], "model": "SG" if cfg["sg"] else "CBOW",
            "negative": cfg["negative"] if cfg["objective"] in NEGATIVE_SAMPLING else "-",
            "window": cfg["window"], "vector_size": cfg["vector_size"],
            "words/s": words / train_s if words and train_s else done.get("words_per_sec"),
            "step ms": (1e3 * train_s / n_steps) if train_s and n_steps else None,
            "final loss": progress[-1]["loss"] if progress else None,
            "analogy": r["scores"]["analogy"], "WordSim-353": r["scores"]["wordsim"],
            "train s": train_s}


def summarise(results: list[dict]) -> list[dict[str, Any]]:
    """One row per group × sweep point, mean ± std over seeds."""
    rows: dict[tuple, list[dict]] = {}
    for r in results:
        key_varied = {k: v for k, v in r["varied"].items() if k != "seed"}
        key = (r["group"], tuple(sorted(key_varied.items())))
        rows.setdefault(key, []).append(_row(r))
    table = []
    for (group, varied), runs in rows.items():
        row = {"run": group + "".join(f" {k}={v}" for k, v in varied),
               "seeds": len(runs)}
        for col in _COLUMNS:
            vals = [x[col] for x in runs]
            if col in _MEASURED and all(isinstance(v, (int, float)) for v in vals):
                # the sample sd (n − 1): the population sd is half the range at 2 seeds
                row[col] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None)
            else:
                row[col] = vals[0]
        table.append(row)
    return table


def at_equal_time(results: list[dict],
                  budget: float | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Scores at a training-time budget (default: the fastest run's training time): each run's
    last per-epoch evaluation finished within that many training seconds (None: no epoch
    done by then). Both on the trainer's clock (``Progress.elapsed``). No rows when no run
    evaluated each epoch."""
    totals = [_run_seconds(r["done"]) for r in results if _run_seconds(r["done"])]
    if not totals or not any(r["evals"] for r in results):
        return 0.0, []
    budget = min(totals) if budget is None else budget
    rows = []
    for r in results:
        within = [e for e in r["evals"] if e.get("elapsed") is not None and e["elapsed"] <= budget]
        last = within[-1] if within else None
        label = r["group"] + "".join(f" {k}={v}" for k, v in r["varied"].items())  # as summarise
        rows.append({"run": label, "epochs done": last["epoch"] if last else 0,
                     "words seen": last["words"] if last else 0,
                     "analogy": last["analogy"] if last else None,
                     "WordSim-353": last["wordsim"] if last else None})
    return budget, rows


def _fmt(col: str, v: Any) -> str:
    if isinstance(v, tuple):
        mean, std = v
        if col in ("analogy",):
            s = f"{100 * mean:.2f}%"
            return s if std is None else f"{s} ± {100 * std:.2f}"
        if col == "words/s":
            s = f"{mean / 1e3:.0f}k"
            return s if std is None else f"{s} ± {std / 1e3:.0f}k"
        digits = 3 if col in ("WordSim-353", "final loss", "step ms") else 1
        s = f"{mean:.{digits}f}"
        return s if std is None else f"{s} ± {std:.{digits}f}"
    return "n/a" if v is None else str(v)


def write_summary(table: list[dict], out_dir: str | os.PathLike, title: str,
                  equal_time: tuple[float, list[dict]] | None = None) -> str:
    """Writes summary.md (with the :func:`at_equal_time` table if given) and summary.csv;
    returns the markdown."""
    out = Path(out_dir)
    cols = ["run", "seeds", *_COLUMNS]
    md = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        md.append("| " + " | ".join(_fmt(c, row[c]) for c in cols) + " |")
    text = "\n".join(md) + "\n"
    if equal_time is not None and equal_time[1]:
        budget, rows = equal_time
        text += (f"\nAt equal training time ({budget:.1f} training seconds; scores of the last "
                 "epoch each run finished by then):\n\n"
                 "| run | epochs done | words seen | analogy | WordSim-353 |\n|---|---|---|---|---|\n")
        for r in rows:
            a = "n/a" if r["analogy"] is None else f"{100 * r['analogy']:.2f}%"
            ws = "n/a" if r["WordSim-353"] is None else f"{r['WordSim-353']:.3f}"
            text += f"| {r['run']} | {r['epochs done']} | {r['words seen']:,} | {a} | {ws} |\n"
    (out / "summary.md").write_text(text)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c for col in cols for c in ((col, col + " std") if col in _MEASURED else (col,))])
    for row in table:
        line = []
        for col in cols:
            v = row[col]
            if col in _MEASURED:
                line += [v[0], v[1]] if isinstance(v, tuple) else [v, None]
            else:
                line.append(v)
        w.writerow(["" if x is None else x for x in line])
    (out / "summary.csv").write_text(buf.getvalue())
    return text


def _save(fig, legend_ax, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    if legend_ax.get_legend_handles_labels()[0]:
        legend_ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(results: list[dict], out_dir: str | os.PathLike, title: str) -> list[Path]:
    """loss vs words and vs wall-clock, scores vs epoch, final scores: PNGs in out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        p = r["progress"]
        if not p:
            continue
        axes[0].plot([x["words"] for x in p], [x["loss"] for x in p], label=r["name"], lw=1)
        axes[1].plot([x["elapsed"] for x in p], [x["loss"] for x in p], label=r["name"], lw=1)
    axes[0].set(xlabel="raw words seen", ylabel="loss per example", title="loss vs words")
    axes[1].set(xlabel="training seconds", ylabel="loss per example", title="loss vs wall-clock")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    paths.append(_save(fig, axes[1], title, out / "loss.png"))

    if any(r["evals"] for r in results):
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
        for r in results:
            e = [x for x in r["evals"] if x.get("analogy") is not None]
            if not e:
                continue
            axes[0].plot([x["epoch"] for x in e], [100 * x["analogy"] for x in e], "o-", label=r["name"])
            axes[1].plot([x["epoch"] for x in e], [x["wordsim"] for x in e], "o-", label=r["name"])
            if all(x.get("elapsed") is not None for x in e):
                axes[2].plot([x["elapsed"] for x in e], [100 * x["analogy"] for x in e], "o-",
                             label=r["name"])
        axes[0].set(xlabel="epoch", ylabel="analogy accuracy % (3CosAdd, 30k)", title="analogy vs epoch")
        axes[1].set(xlabel="epoch", ylabel="WordSim-353 Spearman", title="similarity vs epoch")
        axes[2].set(xlabel="training seconds", ylabel="analogy accuracy %",
                    title="analogy vs wall-clock")
        for ax in axes:
            ax.grid(alpha=0.3)
        paths.append(_save(fig, axes[2], title, out / "scores_vs_epoch.png"))

    table = summarise(results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(table) + 2))
    labels = [row["run"] for row in table]
    for ax, col, scale, name in ((axes[0], "analogy", 100, "analogy accuracy %"),
                                 (axes[1], "WordSim-353", 1, "WordSim-353 Spearman")):
        means = [(row[col][0] if isinstance(row[col], tuple) else math.nan) * scale for row in table]
        stds = [((row[col][1] or 0) if isinstance(row[col], tuple) else 0) * scale for row in table]
        ax.barh(labels, means, xerr=stds, color="tab:blue", alpha=0.8)
        ax.set(xlabel=name)
        ax.grid(axis="x", alpha=0.3)
        ax.invert_yaxis()
    axes[1].set_yticklabels([])
    paths.append(_save(fig, axes[0], title, out / "final_scores.png"))
    return paths


def run_scaling(spec: dict[str, Any], base: dict[str, Any], out_dir: str | os.PathLike,
                log: Callable[[str], None] = print) -> str:
    """Measures time per pair vs vocabulary size per objective; writes scaling.{json,md,png}.

    ``spec``: ``vocab_sizes`` (list), ``objectives`` (default softmax, ns, hs), optional
    ``calls`` (timed calls per point, default 3) and ``steps_per_call`` per objective.
    Points already in scaling.json for the same settings are not measured again.
    Returns the markdown.
    """
    from w2v_jax.scaling import loglog_slope, time_per_pair

    out = Path(out_dir)
    path = out / "scaling.json"
    sizes = [int(v) for v in spec["vocab_sizes"]]
    objectives = spec.get("objectives", ["softmax", "ns", "hs"])
    # Steps a timed call: the softmax's are ~100× dearer at large V, so fewer of them.
    steps = {o: 4 if o == "softmax" else 32 for o in OBJECTIVES} | spec.get("steps_per_call", {})
    hyper = {k: v for k, v in base.items() if k in ("sg", "vector_size", "window", "negative",
                                                      "batch_size", "shared_negatives")}
    points = json.loads(path.read_text()) if path.exists() else {}
    settings = {"base": hyper, "steps_per_call": steps, "calls": int(spec.get("calls", 3))}
    if points.pop("settings", None) != settings:  # measured with other settings: again
        points = {}
    for obj in objectives:
        for v in sizes:
            key = f"{obj}/{v}"
            if key in points:
                continue
            cfg = Config.from_dict(without_inactive(
                hyper | {"objective": obj, "steps_per_call": steps[obj], "min_count": 1,
                         "sample": 0}))  # the base's negative does not reach hs or softmax
            points[key] = time_per_pair(cfg, v, calls=int(spec.get("calls", 3)))
            log(f"scaling: {obj:8s} V={v:>7,}  {1e6 * points[key]:9.3f} µs per pair")
            path.write_text(json.dumps({"settings": settings} | points, indent=2) + "\n")
    slopes = {o: loglog_slope(sizes, [points[f"{o}/{v}"] for v in sizes]) for o in objectives}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for o in objectives:
        ys = [1e6 * points[f"{o}/{v}"] for v in sizes]
        ax.loglog(sizes, ys, "o-", label=f"{o}: slope {slopes[o]:.2f}")
    ax.set(xlabel="vocabulary size V", ylabel="µs per training pair (fwd + bwd + update)",
           title="Cost of a pair vs vocabulary (log-log, fitted slopes)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)
    md = ["| V | " + " | ".join(f"{o} µs/pair" for o in objectives) + " |",
          "|---|" + "---|" * len(objectives)]
    for v in sizes:
        md.append(f"| {v:,} | " + " | ".join(f"{1e6 * points[f'{o}/{v}']:.3f}" for o in objectives) + " |")
    md.append("| log-log slope | " + " | ".join(f"{slopes[o]:.2f}" for o in objectives) + " |")
    text = "\n".join(md) + "\n"
    (out / "scaling.md").write_text(text)
    return text


__all__ = ["at_equal_time", "failures", "run_scaling", "Experiment", "RunSpec", "expand", "load_experiment", "load_results", "parse_sweep",
           "plot", "run_experiment", "score_run", "summarise", "write_summary"]
