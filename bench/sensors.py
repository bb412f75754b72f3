"""SKAB in the bench: ``python -m bench.sensors``.

The outlier-detection leaderboard of SKAB v0.9 (:mod:`bench.skab`), run as upstream runs it,
next to streammem on the same files:

* **Protocol check** — T-squared+Q (PCA) and Isolation forest reimplemented from upstream; their
  F1 / FAR / MAR must land within 0.005 F1 of the published rows, or the run exits with 1.
* **Offline** — per file, a fresh detector (defaults) learns the first 400 rows
  (``learn_many``) and scores every row (``score_many``, pure). Flags under the Vanilla-AE rule
  and the Conv-AE rule (:func:`bench.skab.vanilla_rule`, :func:`bench.skab.conv_rule`), pooled
  F1 / FAR / MAR, and the mean over files of the AUROC of the test rows' scores.
* **Streaming** — each file streamed in time order, one event at a time: ``score_one``, then
  ``learn_one`` through :class:`streammem.AlertFilter`, whose calibrator takes its limit from
  the first 400 events only (the Vanilla-AE rule's limit, ``quantile_0.99 * 5/2``, over the
  scores of events 60 to 399: the first 60 are left out, while windows fill and the model
  starts) and never moves after: flagged events are not learned. Per-file AUROC and F1 / FAR /
  MAR of the flags, over the test rows. ``streaming-q99`` does the same with the limit at the
  quantile alone (no 5/2 margin: more flags, so more protection), added after the first full
  run showed how little the margin lets the filter protect.
* **Windows** — ``MemAE@60`` reads ``streammem.TimeWindow(size=60)`` vectors (defaults: mean,
  std, slope, last-minus-mean of each sensor over the last 60 readings) instead of raw rows;
  ``MemAE@30:std+mean`` picks the size and the features. Offline, as upstream's Conv-AE, only
  complete windows train (rows ``size - 1`` to 399 of the training part) and set the limits; a
  test row's window looks back into the training part (it only looks back). In the streaming
  column the window sits in front of the alert filter (``window | alerts``), as in the
  service: it takes in every event, the detector only unflagged ones.
* **References** — ``nomodel`` scores a row by its mean squared z-score (mean and standard
  deviation of the first 400 rows offline; of the unflagged events before it when streaming, in
  the same alert filter); ``nomodel@60`` does the same on the window vectors; ``flag-all``
  flags every test row. No model at all: a result counts only where it beats them.

Nothing here reads a label or a test row to choose anything: thresholds come from the training
rows (offline) or the first 400 events (streaming), detectors run with defaults, and the
window of the headline rows (``@60``, TimeWindow's default features) was fixed before the
first run; the other windows are an ablation, reported as measured.

Cells (contender x column) are cached under ``--cache-dir`` by the hash of what decides them
(the source of the package and of these modules), so an interrupted run resumes. Reports go to
``--out`` (:mod:`bench.sensors_report`).

Examples
--------
The CI smoke run (the protocol check on all 34 files, MemAE raw and windowed on four)::

    python -m bench.sensors --quick

Everything (about an hour on two cores)::

    python -m bench.sensors
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import shlex
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from river import base as river_base
from tqdm import tqdm

from bench.cli import BENCH_DIR, bench_parser, report_dir, split_list
from bench.datasets import DataMissing
from bench.sensors_cells import (
    ABLATION,
    COLUMNS,
    HEADLINE,
    LEADERBOARD_MODELS,
    STREAMING_MARGINS,
    CellResult,
    Check,
    Contender,
    parse_contender,
)
from bench.sensors_report import write_reports
from bench.skab import (
    LEADERBOARD,
    SKAB,
    TRAIN_ROWS,
    WINDOW,
    Counts,
    SkabFile,
    conv_rule,
    finite_scores,
    iforest_flags,
    t2q_flags,
    vanilla_rule,
)
from streammem import AlertFilter, Calibrator

__all__ = ["FirstEvents", "RunningZ", "check_protocol", "main", "run_cell"]

CACHE_VERSION = 1
QUICK_FILES = ("valve1/0", "valve2/0", "other/9", "other/14")
QUICK_CONTENDERS = ("T2Q", "IForest", "flag-all", "nomodel", "nomodel@60", "MemAE", "MemAE@60")


# ---------------------------------------------------------------------------------- references
class RunningZ(river_base.AnomalyDetector):
    """No model: a record's mean squared z-score under the running mean and standard deviation
    of the records learned before it (fields that have not varied yet add nothing).

    Examples
    --------
    >>> z = RunningZ()
    >>> for x in (1.0, 3.0):
    ...     z.learn_one({"a": x})
    >>> z.score_one({"a": 4.0})
    4.0
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def learn_one(self, x: dict) -> None:
        v = np.fromiter(x.values(), dtype=np.float64, count=len(x))
        if self.mean is None:
            self.mean, self.m2 = np.zeros_like(v), np.zeros_like(v)
        self.n += 1
        delta = v - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (v - self.mean)

    def score_one(self, x: dict) -> float:
        if self.n < 2:
            return 0.0
        v = np.fromiter(x.values(), dtype=np.float64, count=len(x))
        std = np.sqrt(self.m2 / self.n)
        z = np.divide(v - self.mean, std, out=np.zeros_like(v), where=std > 1e-12)
        return float(np.mean(z**2))


class FirstEvents(Calibrator):
    """The streaming column's limit: the Vanilla-AE rule (``quantile_q * factor``) over the
    scores of events ``skip`` to ``n - 1``, which then never changes; nothing is flagged
    before it is set.

    Examples
    --------
    >>> calibrator = FirstEvents(n=6, skip=2, q=0.5, factor=2.0)
    >>> calibrator.learn_many(np.array([50.0, 40.0, 1.0, 2.0, 3.0, 4.0, 99.0]))
    >>> calibrator.threshold()
    5.0
    """

    def __init__(
        self, n: int = TRAIN_ROWS, skip: int = WINDOW, q: float = 0.99, factor: float = 5 / 2
    ) -> None:
        super().__init__(window_size=n - skip, min_reference=n - skip)
        self.n = n
        self.skip = skip
        self.q = q
        self.factor = factor
        self.seen = 0

    def learn_many(self, scores: Any) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        first, self.seen = self.seen, self.seen + len(scores)
        super().learn_many(scores[max(self.skip - first, 0) : max(self.n - first, 0)])

    def alerts(self, scores: np.ndarray, p_values: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) > self.threshold()

    def threshold(self) -> float:
        if not self.is_warm:
            return float("inf")
        return float(np.quantile(np.fromiter(self.reference_, np.float64), self.q)) * self.factor


# ---------------------------------------------------------------------------------- scoring
def _readings(file: SkabFile, contender: Contender) -> pd.DataFrame:
    """The file's rows as the contender reads them: raw sensors, or their windows."""
    frame = file.X.reset_index(drop=True)
    window = contender.new_window()
    return window.transform_many(frame) if window is not None else frame


def _training_rows(contender: Contender) -> slice:
    """The rows that train and set the limits: all 400, or those whose window is complete."""
    return slice(contender.window[0] - 1 if contender.window else 0, TRAIN_ROWS)


def _offline_nomodel(values: np.ndarray, train: slice) -> np.ndarray:
    """Mean squared z-score under the training rows' mean and std (StandardScaler's)."""
    mean, std = values[train].mean(axis=0), values[train].std(axis=0)
    z = np.divide(values - mean, std, out=np.zeros_like(values), where=std > 1e-12)
    return (z**2).mean(axis=1)


def _offline(contender: Contender, file: SkabFile) -> dict[str, Any]:
    if contender.kind == "leaderboard":
        run = t2q_flags if contender.model == "T2Q" else iforest_flags
        flags, statistic = run(file.X.iloc[:TRAIN_ROWS], file.X.iloc[TRAIN_ROWS:])
        return _result(file, statistic, {"own": flags})
    if contender.kind == "flag-all":
        return _result(file, None, {"own": np.ones(len(file.y_test), dtype=bool)})
    frame, rows = _readings(file, contender), _training_rows(contender)
    if contender.kind == "nomodel":
        scores = _offline_nomodel(frame.to_numpy(dtype=np.float64), rows)
    else:
        detector = contender.new_detector()
        detector.learn_many(frame.iloc[rows])
        scores = np.asarray(detector.score_many(frame), dtype=np.float64)
    train, test = scores[rows], scores[TRAIN_ROWS:]
    rules = {"vanilla": vanilla_rule(train, test), "conv": conv_rule(train, test)}
    return _result(file, test, rules)


def _streaming(contender: Contender, file: SkabFile, margin: float) -> dict[str, Any]:
    detector = RunningZ() if contender.kind == "nomodel" else contender.new_detector()
    model: Any = AlertFilter(detector, FirstEvents(factor=margin))
    window = contender.new_window()
    if window is not None:
        model = window | model
    records = file.X.reset_index(drop=True).to_dict("records")
    scores = np.empty(len(records))
    flags = np.zeros(len(records), dtype=bool)
    for i, x in enumerate(records):
        scores[i] = model.score_one(x)
        flags[i] = model.classify(scores[i])
        model.learn_one(x)
    return _result(file, scores[TRAIN_ROWS:], {"stream": flags[TRAIN_ROWS:]})


def _result(file: SkabFile, test_scores: np.ndarray | None, flags: dict) -> dict[str, Any]:
    return {
        "auroc": _auroc(file.y_test, test_scores) if test_scores is not None else None,
        "counts": {rule: Counts.of(file.y_test, f).astuple() for rule, f in flags.items()},
        "nonfinite": int((~np.isfinite(test_scores)).sum()) if test_scores is not None else 0,
    }


def _auroc(y: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if not 0 < y.sum() < len(y):
        return None
    return float(roc_auc_score(y, finite_scores(scores)))


# ---------------------------------------------------------------------------------- cells
def _cell_path(cache_dir: Path, contender: Contender, column: str, files: Sequence[str]) -> Path:
    config = {
        "version": CACHE_VERSION,
        "contender": contender.text,
        "column": column,
        "files": list(files),
        "fingerprint": contender.fingerprint(),
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", f"{contender.text}-{column}")[:80]
    return cache_dir / f"{safe}-{key}.json"


def run_cell(
    contender: Contender,
    column: str,
    files: Sequence[str],
    skab: SKAB,
    cache_dir: Path,
) -> CellResult:
    """The cached cell, else run the contender on every file and cache it."""
    path = _cell_path(cache_dir, contender, column, files)
    if path.is_file():
        return CellResult(**json.loads(path.read_text()))
    if column == "offline":
        run = _offline
    else:
        run = partial(_streaming, margin=STREAMING_MARGINS[column])
    result = CellResult(contender.text, column, "ok")
    started = time.perf_counter()
    for name in tqdm(files, desc=f"{contender.text} {column}", unit="file", leave=False):
        try:
            file = skab.load_file(name)
        except DataMissing as err:
            print(f"  {name}: data missing ({err})", file=sys.stderr)
            return CellResult(contender.text, column, "data missing")
        began = time.perf_counter()
        result.files[name] = {**run(contender, file), "seconds": time.perf_counter() - began}
    result.seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result)) + "\n")
    return result


def check_protocol(results: Sequence[CellResult]) -> list[Check]:
    """The reimplemented leaderboard rows that ran on all 34 files, against the published."""
    published = {name: row for name, *row in LEADERBOARD}
    checks = []
    for result in results:
        title = LEADERBOARD_MODELS.get(result.contender)
        if title is None or result.status != "ok" or len(result.files) != len(SKAB.file_names()):
            continue
        checks.append(Check(title, result.pooled("own"), tuple(published[title])))
    return checks


# ---------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(
        __name__, __doc__, quick="4 files", data="skab/", download=True, out="sensors"
    )
    parser.add_argument("--contenders", help="comma-separated (default: headline + ablation)")
    parser.add_argument("--columns", default=",".join(COLUMNS), help=",".join(COLUMNS))
    parser.add_argument("--files", help="comma-separated SKAB files, e.g. valve1/0 (default: 34)")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / "cache" / "sensors")
    parser.add_argument("--no-report", action="store_true", help="run cells only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    default = QUICK_CONTENDERS if args.quick else [*HEADLINE, *ABLATION]
    contenders = [parse_contender(text) for text in split_list(args.contenders, default)]
    columns = split_list(args.columns, COLUMNS)
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise SystemExit(f"unknown column(s) {unknown}; choose from {list(COLUMNS)}")
    files = split_list(args.files, QUICK_FILES if args.quick else SKAB.file_names())
    skab = SKAB(args.data_root, args.download)
    cache_dir = args.cache_dir / "quick" if args.quick else args.cache_dir
    out = report_dir(args, "sensors", cache_dir / "report")
    cells = [(c, col) for c in contenders for col in columns if col in c.columns]
    results = []
    started = time.perf_counter()
    with tqdm(cells, unit="cell", desc="bench.sensors") as bar:
        for contender, column in bar:
            bar.set_postfix_str(f"{contender.text} {column}")
            chosen = SKAB.file_names() if contender.all_files else files
            results.append(run_cell(contender, column, chosen, skab, cache_dir))
    checks = check_protocol(results)
    for check in checks:
        verdict = "ok" if check.passed else "FAILED"
        print(
            f"protocol check {check.name}: F1 {check.ours[0]:.3f} FAR {check.ours[1]:.2f} "
            f"MAR {check.ours[2]:.2f}; published {check.published[0]:.2f} / "
            f"{check.published[1]:.2f} / {check.published[2]:.2f}: {verdict}"
        )
    if not args.no_report:
        command = "python -m bench.sensors " + shlex.join(
            argv if argv is not None else sys.argv[1:]
        )
        written = write_reports(results, checks, out, command, time.perf_counter() - started)
        print(f"reports: {', '.join(str(p) for p in written)}")
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
