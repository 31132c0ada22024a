"""Runs experiments: ``python -m experiments.run experiments/softmax_vs_ns.toml``.

    python -m experiments.run CONFIG [CONFIG ...] [--out DIR] [--corpus embedded|bench|PATH]
        [--sweep FIELD=V1,V2 ...] [--seeds 0,1,2] [--set FIELD=V ...] [--results DIR]

Each run of experiment NAME trains into OUT/<run>/ (default OUT: runs/NAME); finished
runs are skipped and interrupted ones resumed, so the same command continues a stopped
experiment. The summary (markdown + CSV) and plots (PNG) are written to OUT and, with
--results DIR, copied to DIR/NAME/ (e.g. experiments/results/NAME). The logic lives in
``w2v_jax.experiment``; this file only assembles it.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from w2v_jax.cli import guarded, tune_xla_cpu
from w2v_jax.errors import Interrupted, W2VError
from w2v_jax.heap import return_large_buffers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", metavar="CONFIG", help="experiment TOML file(s)")
    p.add_argument("--out", help="experiment directory (default: runs/<name>; one config only)")
    p.add_argument("--corpus", help="embedded, bench, or a path (default: the file's)")
    p.add_argument("--sweep", nargs="*", default=None, metavar="FIELD=V1,V2",
                   help="grid over config fields (replaces the file's [sweep])")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (replaces the file's)")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=V",
                   help="set a config field in every run, e.g. epochs=1")
    p.add_argument("--results", help="also copy summary and plots into RESULTS/<name>/")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    tune_xla_cpu()
    return_large_buffers()

    def work() -> int:
        if args.out and len(args.configs) > 1:
            raise W2VError("--out names one experiment's directory; give one CONFIG with it")
        try:
            return max(_run(args, config) for config in args.configs)
        except Interrupted as e:
            by = getattr(e, "signum", None) or signal.SIGINT
            print(f"experiments.run: stopped by {signal.Signals(by).name}; run the same "
                  "command again to resume", file=sys.stderr)
            return 128 + by  # as a shell reports a process killed by that signal

    return guarded(work, "experiments.run", args.debug)


def _run(args, config: str) -> int:
    from w2v_jax import experiment as ex
    from w2v_jax.run import prepare_out_dir
    from w2v_jax.cli import _StopFlag

    exp = ex.load_experiment(config)
    sweep = None if args.sweep is None else ex.parse_sweep(args.sweep)
    seeds = None if args.seeds is None else ex.parse_seeds(args.seeds)
    overrides = ex.parse_overrides(args.set)
    specs = ex.expand(exp, sweep, seeds, overrides)
    corpus = ex.corpus_path(exp, args.corpus)
    out = Path(args.out or Path("runs") / exp.name)
    # Checked before any training, so that a bad --results does not wait for the runs.
    dest = None if args.results is None else prepare_out_dir(Path(args.results) / exp.name,
                                                              "--results")
    print(f"experiment {exp.name}: {len(specs)} run(s) on {corpus} into {out}", file=sys.stderr)
    stop = _StopFlag()
    try:
        results = ex.run_experiment(exp, specs, out, corpus,
                                    log=lambda m: print(m, file=sys.stderr), should_stop=stop)
    except Interrupted as e:
        e.signum = stop.signum  # for the exit status
        raise
    finally:
        stop.restore()
    title = f"{exp.name}: {exp.description}" if exp.description else exp.name
    text = ex.write_summary(ex.summarise(results), out, title, ex.at_equal_time(results, exp.equal_time_seconds))
    names = [s.name for s in specs]
    failed, busy = ex.failures(out, names), ex.unfinished(out, names)
    if failed:
        text += "\nFailed runs:\n\n" + "".join(f"- {k}: {v}\n" for k, v in failed.items())
        (out / "summary.md").write_text(text)
    plots = ex.plot(results, out, exp.name)
    if exp.scaling:
        text += "\nCost per pair vs vocabulary size:\n\n" + ex.run_scaling(
            exp.scaling, exp.base | overrides, out, log=lambda m: print(m, file=sys.stderr))
        (out / "summary.md").write_text(text)
        plots += [out / "scaling.png", out / "scaling.json"]
    print(text)
    if failed:
        print(f"experiments.run: {len(failed)} run(s) failed; see summary.md", file=sys.stderr)
    if busy:
        print(f"experiments.run: {len(busy)} run(s) were being trained by another process "
              f"({', '.join(busy)}); run the same command again once it is done", file=sys.stderr)
    if dest is not None:
        try:
            for f in [out / "summary.md", out / "summary.csv", *plots]:
                shutil.copy(f, dest / f.name)
        except OSError as e:
            raise W2VError(f"cannot copy the summary and plots to {dest}: {e.strerror or e} "
                           f"(they are in {out}); choose another --results") from None
        print(f"copied summary and plots to {dest}", file=sys.stderr)
    return 1 if failed or busy else 0


if __name__ == "__main__":
    sys.exit(main())
