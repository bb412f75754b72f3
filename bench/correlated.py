"""Correlated sensor streams (:mod:`bench.generators`): ``python -m bench.correlated``.

The class of data the learning issue is about, with a known answer for every fault: 12
sensors driven by 3 slow latent processes, mixed by a matrix that depends on a machine state,
faults of five kinds on known sensors. Each stream (three data seeds) is read in time order in
DataFrames of 256 rows, each scored then learned (the bench.stream protocol); no contender sees
a label. Reported per contender, as the mean over the data seeds (and over model seeds 1, 2, 42
for streammem detectors):

* prequential AUROC over every event after the first 2,000, and per fault kind (the kind's rows
  against the normal ones);
* the fit: each field's prequential R² (``fit_r2_``: records rebuilt before they are learned),
  sampled every 2,048 events once 10,000 are learned; the worst field's mean over the samples;
* seconds.

Contenders: the streammem detectors with defaults; the **floor** (mean squared running z-score,
no model); the streaming **linear** reference (PCA refitted every 256 events on the last 4,096,
99 % of the variance, standardised: :class:`bench.references.StreamingPCA`); **IForestASD** and
**RRCF** as in ``bench.stream``. Results go to ``bench/results/sensors/correlated.*``; the
figure draws each contender's AUROC and its fit as the stream goes on (data seed 0).

Examples
--------
The CI smoke run (one short stream, MemAE, the floor and the linear reference)::

    python -m bench.correlated --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from bench.cli import BENCH_DIR, bench_parser, report_dir, split_list
from bench.generators import FAULT_KINDS, CorrelatedSensors
from bench.references import StreamingPCA
from bench.stream import BATCH, floor_scores, iforest_asd_scores, parse_contender

__all__ = ["CONTENDERS", "main", "run_stream"]

WARMUP = 2_000  # events before the AUROC counts
FIT_AFTER = 10_000  # events learned before the fit is sampled
FIT_EVERY = 2_048
DATA_SEEDS = (0, 1, 2)
MODEL_SEEDS = (1, 2, 42)
STREAMMEM = ("MemAE", "AE", "Memorizer", "RFTM")
CONTENDERS = (*STREAMMEM, "floor", "linear", "IForestASD", "RRCF")
QUICK = ("MemAE", "floor", "linear")


@dataclasses.dataclass
class Trace:
    """What a contender's run over one stream gives: its scores, and its fit by field at the
    events where it was sampled."""

    scores: np.ndarray
    fit: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def _batched(model: Any, records: pd.DataFrame) -> Trace:
    """Score then learn each DataFrame of ``BATCH`` rows; sample ``fit_r2_`` as it goes."""
    trace = Trace(np.empty(len(records)))
    next_sample = FIT_AFTER
    for start in range(0, len(records), BATCH):
        batch = records.iloc[start : start + BATCH]
        trace.scores[start : start + len(batch)] = model.score_many(batch)
        model.learn_many(batch)
        seen = start + len(batch)
        if seen >= next_sample:
            trace.fit[seen] = dict(model.fit_r2_)
            next_sample += FIT_EVERY
    return trace


def _numbers(records: pd.DataFrame) -> np.ndarray:
    """The sensors and the state one-hot: what the peers that take numbers read."""
    return pd.get_dummies(records, columns=["state"], dtype=float).to_numpy(np.float64)


def _rrcf(records: pd.DataFrame) -> np.ndarray:
    from bench.stream import StreamData, _rrcf

    X = _numbers(records)
    return _rrcf(StreamData("correlated", X, np.zeros(len(X))), {})


def _base(name: str) -> str:
    return name.partition("[")[0]


def contender(name: str, seed: int) -> Callable[[pd.DataFrame], Trace]:
    """How ``name`` reads a stream (``seed``: the model's, for streammem detectors, which take
    parameters as in bench.stream: ``MemAE[schedule=Schedule(budget=1)]``)."""
    if _base(name) in STREAMMEM:
        import streammem

        kwargs = parse_contender(name).kwargs()
        make = getattr(streammem, _base(name))
        return lambda records: _batched(make(**{"seed": seed, **kwargs}), records)
    if name == "linear":
        return lambda records: _batched(StreamingPCA(), records)
    scorer = {
        "floor": lambda records: floor_scores(_numbers(records)),
        "IForestASD": lambda records: iforest_asd_scores(_numbers(records)),
        "RRCF": _rrcf,
    }[name]
    return lambda records: Trace(scorer(records))


def run_stream(name: str, seed: int, stream: CorrelatedSensors) -> Trace:
    started = time.perf_counter()
    trace = contender(name, seed)(stream.records())
    trace.seconds = time.perf_counter() - started
    return trace


def metrics(trace: Trace, frame: pd.DataFrame) -> dict[str, float | None]:
    """AUROC after the warm-up, per fault kind, and the worst field's mean fit."""
    y = frame["is_anomaly"].to_numpy()
    kind = frame["fault"].to_numpy()
    later = np.arange(len(y)) >= WARMUP
    out: dict[str, float | None] = {"auroc": float(roc_auc_score(y[later], trace.scores[later]))}
    for k in FAULT_KINDS:
        rows = later & ((kind == k) | (kind == ""))
        present = (kind[rows] == k).any()
        out[f"auroc_{k}"] = float(roc_auc_score(y[rows], trace.scores[rows])) if present else None
    if trace.fit:
        fields = [f for f in next(iter(trace.fit.values())) if f != "state"]
        means = {f: float(np.nanmean([sample[f] for sample in trace.fit.values()])) for f in fields}
        worst = min(means, key=means.get)
        out["fit_r2_min"], out["fit_r2_median"] = (
            means[worst],
            float(np.median(list(means.values()))),
        )
        out["fit_worst_field"] = worst  # type: ignore[assignment]
    out["seconds"] = trace.seconds
    return out


# ---------------------------------------------------------------------------------- report
def _mean(rows: pd.DataFrame, column: str) -> str:
    values = pd.to_numeric(rows[column], errors="coerce").dropna()
    return f"{values.mean():.3f}" if len(values) else ""


def write_report(cells: pd.DataFrame, traces: dict, out: Path, command: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    cells.to_csv(out / "correlated.csv", index=False, float_format="%.4f")
    names = list(dict.fromkeys(cells["contender"]))
    kinds = [f"auroc_{k}" for k in FAULT_KINDS]
    lines = [
        "# Correlated sensor streams (`bench.generators`)",
        "",
        f"Made by `{command}` (protocol: `bench/correlated.py`). Mean over data seeds "
        f"{sorted(set(cells['data_seed']))}; streammem detectors also over model seeds "
        f"{sorted(set(cells.loc[cells['contender'].map(_base).isin(STREAMMEM), 'model_seed']))}. "
        "AUROC after the first 2,000 events; per kind: that kind's rows against the normal "
        "ones. Fit: the worst field's mean prequential R² (records rebuilt before they are "
        "learned) once 10,000 events are learned, sampled every 2,048 events.",
        "",
        "| contender | AUROC | " + " | ".join(FAULT_KINDS) + " | fit R² worst field | "
        "fit R² median | seconds |",
        "|---|---:|" + "---:|" * len(FAULT_KINDS) + "---:|---:|---:|",
    ]
    for name in names:
        rows = cells[cells["contender"] == name]
        values = [_mean(rows, "auroc"), *[_mean(rows, k) for k in kinds]]
        values += [_mean(rows, "fit_r2_min"), _mean(rows, "fit_r2_median"), _mean(rows, "seconds")]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", "Per data seed (AUROC; streammem: mean over model seeds):", ""]
    seeds = sorted(set(cells["data_seed"]))
    lines += ["| contender | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines += ["|---|" + "---:|" * len(seeds)]
    for name in names:
        rows = cells[cells["contender"] == name]
        lines.append(
            f"| {name} | "
            + " | ".join(_mean(rows[rows["data_seed"] == s], "auroc") for s in seeds)
            + " |"
        )
    lines += [""]
    (out / "correlated.md").write_text("\n".join(lines))
    return [out / "correlated.csv", out / "correlated.md", _figure(traces, out / "correlated.png")]


def _figure(traces: dict, path: Path) -> Path:
    """Rolling AUROC (windows of 5,000 events) and the fit of each contender on data seed 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame, runs = traces["frame"], traces["runs"]
    y = frame["is_anomaly"].to_numpy()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    edges = np.arange(WARMUP, len(y) + 1, 5_000)
    for name, trace in runs.items():
        auroc = [
            roc_auc_score(y[a:b], trace.scores[a:b]) if 0 < y[a:b].sum() < b - a else np.nan
            for a, b in itertools.pairwise(edges)
        ]
        top.plot(edges[1:], auroc, marker="o", ms=3, label=name)
        if trace.fit:
            at = sorted(trace.fit)
            worst = [min(v for f, v in trace.fit[t].items() if f != "state") for t in at]
            bottom.plot(at, worst, label=name)
    top.set_ylabel("AUROC, last 5,000 events")
    top.legend(fontsize=8, ncol=3, frameon=False)
    bottom.set_ylabel("fit R², worst sensor")
    bottom.set_xlabel("events")
    bottom.set_ylim(0, 1.02)
    bottom.axhline(0.95, color="grey", ls=":", lw=1)
    fig.suptitle("Correlated sensors (data seed 0): detection and fit as the stream goes on")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(__name__, __doc__, quick="one short stream", out="sensors")
    parser.add_argument("--contenders", help=f"comma-separated (default: {','.join(CONTENDERS)})")
    parser.add_argument("--data-seeds", default=",".join(map(str, DATA_SEEDS)))
    parser.add_argument("--model-seeds", default=",".join(map(str, MODEL_SEEDS)))
    parser.add_argument("--events", type=int, default=60_000)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = split_list(args.contenders, QUICK if args.quick else CONTENDERS)
    data_seeds = [0] if args.quick else [int(s) for s in split_list(args.data_seeds, ())]
    model_seeds = [42] if args.quick else [int(s) for s in split_list(args.model_seeds, ())]
    events = 12_000 if args.quick else args.events
    cells, traces = [], {"runs": {}}
    jobs = [
        (name, d, m)
        for name in names
        for d in data_seeds
        for m in (model_seeds if _base(name) in STREAMMEM else [0])
    ]
    for name, data_seed, model_seed in tqdm(jobs, unit="run", desc="bench.correlated"):
        stream = CorrelatedSensors(n_events=events, seed=data_seed)
        trace = run_stream(name, model_seed, stream)
        cells.append(
            {"contender": name, "data_seed": data_seed, "model_seed": model_seed}
            | metrics(trace, stream.frame)
        )
        if data_seed == data_seeds[0] and name not in traces["runs"]:
            traces["runs"][name], traces["frame"] = trace, stream.frame
    out = report_dir(args, "sensors", BENCH_DIR / "cache" / "correlated" / "quick")
    command = "python -m bench.correlated " + shlex.join(argv if argv is not None else sys.argv[1:])
    written = write_report(pd.DataFrame(cells), traces, out, command.strip())
    print((out / "correlated.md").read_text())
    print(json.dumps({"reports": [str(p) for p in written]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
