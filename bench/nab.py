"""NAB in the bench: ``python -m bench.nab``.

The Numenta Anomaly Benchmark v1.1 on the 41 series that ``../shared/datasets/nab`` holds,
scored by :mod:`bench.nab_score` (NAB's scoring, written from its definition):

* **Scorer check** — the five published detectors' results on these files (NAB's own results
  files) are scored and compared with the scoreboard NAB's code gives on them (the shared
  folder's README); the run exits with 1 when one differs by more than 0.1.
* **Contenders** — every series is streamed in time order through a fresh model (one model per
  series: NAB's protocol), each reading scored before it is learned; the NAB anomaly score is
  the contender's likelihood in [0, 1], and one threshold is optimised over the corpus, as NAB
  does. streammem runs its default recipe for metric series, ``streammem.for_series(
  time_field="timestamp")`` (:class:`streammem.SeriesFeatures` in front of the detector and a
  :class:`streammem.TailLikelihood`), with each memory detector built by
  ``streammem.series_detector`` (the recipe's settings), three seeds each;
  ``<detector>@raw`` is the README's earlier recipe, ``AlertFilter(<detector>())`` on the raw
  value with the anomaly score ``1 - p`` (conformal). References, through the same
  ``TailLikelihood``: ``floor`` (no model: the value's squared z-score under the running mean
  and standard deviation), ``floor@series`` (no model on the recipe's features: their mean
  squared z-score), ``linear@series`` (a streaming linear reference: River's
  ``LinearRegression`` forecasting the value from the previous reading's recipe features; score
  the squared error) and River ``HalfSpaceTrees`` on the min-max scaled value.
* **Multi-series** — ``shared:<detector>`` streams the 41 series as one stream (interleaved in
  proportion to their lengths), keyed by file: the features are kept per key, one model learns
  them all with the key as a categorical field, one calibrator judges every score.
* **Also** — VUS-PR (the ``tsb-ad`` package) and AUROC per series over the scored rows, and
  NAB's standard score at the calibrator's default alert threshold (likelihood > 0.999),
  where nothing is optimised.

Settings may be chosen on these 41 files (the other 17 of NAB are held out and never read).
Cells (contender x seed) are cached under ``--cache-dir`` by the hash of the source; the report
goes to ``--out`` (:mod:`bench.nab_report`).

Examples
--------
The CI smoke run (the scorer check, then MemAE and the floor on four series)::

    python -m bench.nab --quick

The committed run (MemAE with three seeds, the other detectors with the default one)::

    python -m bench.nab --jobs 2 --contenders "MemAE,AE#42,Memorizer#42,RFTM#42,MemAE@raw#42,
        shared:MemAE#42,floor,floor@series,linear@series,river_HST#42"
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

import streammem
from bench.cli import BENCH_DIR, bench_parser, parse_ints, report_dir, split_list, variant_params
from bench.nab_measure import Cell, check_scorer
from bench.nab_report import write_report
from bench.nab_score import (
    NAB,
    Series,
)
from bench.stream import floor_scores

__all__ = [
    "DEFAULT_CONTENDERS",
    "TIME",
    "main",
    "run_cell",
    "series_frame",
]

DETECTORS = ("MemAE", "AE", "Memorizer", "RFTM")
SEEDS = (42, 1, 2)
DEFAULT_CONTENDERS = (
    *DETECTORS,
    "MemAE@raw",
    "shared:MemAE",
    "floor",
    "floor@series",
    "linear@series",
    "river_HST",
)
QUICK_CONTENDERS = ("MemAE", "floor")
QUICK_SERIES = (
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
    "realAdExchange/exchange-2_cpc_results.csv",
    "realTraffic/speed_6005.csv",
)
TIME = "timestamp"
KEY = "series"


def series_frame(series: Series) -> pd.DataFrame:
    """A series as a stream of readings: its time in seconds and its value."""
    seconds = series.timestamps.astype("int64").to_numpy() / 1e9
    return pd.DataFrame({TIME: seconds, "value": series.values})


# ---------------------------------------------------------------------- contenders
def _detector(name: str, seed: int, **params: Any) -> Any:
    return getattr(streammem, name)(seed=seed, **params)


def _series_detector(name: str, seed: int, **params: Any) -> Any:
    """The recipe's detector of that class (its series settings), as ``for_series`` builds."""
    return streammem.series_detector(getattr(streammem, name), seed=seed, **params)


def _judged(judged: streammem.alerts.calibration.Judged) -> tuple[np.ndarray, np.ndarray]:
    return 1.0 - judged.p_values, judged.alerts.astype(bool)


def _recipe(
    name: str, seed: int, **params: Any
) -> Callable[[Series], tuple[np.ndarray, np.ndarray]]:
    def run(series: Series) -> tuple[np.ndarray, np.ndarray]:
        detector = _series_detector(name, seed, **params)
        model = streammem.for_series(time_field=TIME, detector=detector)
        return _judged(model.process_many(series_frame(series)))

    return run


def _raw(name: str, seed: int, **params: Any) -> Callable[[Series], tuple[np.ndarray, np.ndarray]]:
    def run(series: Series) -> tuple[np.ndarray, np.ndarray]:
        model = streammem.AlertFilter(_detector(name, seed, **params))
        return _judged(model.process_many(series_frame(series)[["value"]]))

    return run


def _calibrated(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A reference's raw scores through the recipe's calibrator, in order."""
    return _judged(streammem.TailLikelihood().judge_sequence(scores))


def _series_features(series: Series) -> np.ndarray:
    features = streammem.SeriesFeatures(time_field=TIME)
    frame = series_frame(series)
    return features.transform_many(frame).to_numpy(dtype=np.float64)


def _floor(series: Series) -> tuple[np.ndarray, np.ndarray]:
    return _calibrated(floor_scores(series.values[:, None]))


def _floor_series(series: Series) -> tuple[np.ndarray, np.ndarray]:
    return _calibrated(floor_scores(_series_features(series)))


def _linear_series(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """River's linear regression forecasting each value from the previous reading's features."""
    from river import linear_model, preprocessing

    features = _series_features(series)
    model = preprocessing.StandardScaler() | preprocessing.TargetStandardScaler(
        linear_model.LinearRegression()
    )
    scores = np.zeros(len(series))
    for i in range(1, len(series)):
        x = dict(enumerate(features[i - 1].tolist()))
        scores[i] = (model.predict_one(x) - series.values[i]) ** 2
        model.learn_one(x, float(series.values[i]))
    return _calibrated(np.nan_to_num(scores, nan=0.0, posinf=1e300))


def _hst(seed: int) -> Callable[[Series], tuple[np.ndarray, np.ndarray]]:
    def run(series: Series) -> tuple[np.ndarray, np.ndarray]:
        from river import anomaly, preprocessing

        model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)
        scores = np.empty(len(series))
        for i, value in enumerate(series.values.tolist()):
            x = {"value": value}
            scores[i] = model.score_one(x)
            model.learn_one(x)
        return _calibrated(scores)

    return run


def _shared(name: str, seed: int, corpus: Sequence[Series]) -> dict[str, tuple]:
    """The corpus as one keyed stream through one model (the key a categorical field)."""
    encoder = streammem.FeatureEncoder(max_categories=max(32, len(corpus)))
    model = streammem.for_series(
        time_field=TIME, key=KEY, detector=_series_detector(name, seed, encoder=encoder)
    )
    parts = [
        series_frame(s).assign(**{KEY: s.name}, _rank=np.arange(len(s)) / len(s)) for s in corpus
    ]
    stream = pd.concat(parts, ignore_index=True).sort_values("_rank", kind="stable")
    judged = model.process_many(stream.drop(columns="_rank").reset_index(drop=True))
    likelihood, alerts = _judged(judged)
    names = stream[KEY].to_numpy()
    return {s.name: (likelihood[names == s.name], alerts[names == s.name]) for s in corpus}


#: ``[shared:]NAME[params][@raw|@series]``; ``MemAE[radius_quantile=0.999]``: the recipe's
#: detector with those parameters over its series settings (see :func:`~bench.cli.variant_params`).
_PATTERN = re.compile(
    r"^(?:(?P<shared>shared):)?(?P<name>\w+)(?:\[(?P<params>[^\]]*)\])?(?:@(?P<input>raw|series))?$"
)


def _runner(contender: str, seed: int) -> Callable[[Series], tuple[np.ndarray, np.ndarray]]:
    match = _PATTERN.match(contender)
    if match is None:
        raise ValueError(f"cannot read contender {contender!r}")
    name, given = match["name"], match["input"]
    if name in DETECTORS:
        params = variant_params(match["params"] or "")
        return _raw(name, seed, **params) if given == "raw" else _recipe(name, seed, **params)
    if match["params"] is not None:
        raise ValueError(f"{contender!r}: only the detectors take parameters")
    references = {
        ("floor", None): _floor,
        ("floor", "series"): _floor_series,
        ("linear", "series"): _linear_series,
        ("river_HST", None): _hst(seed),
    }
    if (name, given) not in references:
        raise ValueError(
            f"unknown contender {contender!r}: a detector of {list(DETECTORS)} (@raw, or "
            "shared:<detector>), floor, floor@series, linear@series or river_HST"
        )
    return references[name, given]


def is_seeded(contender: str) -> bool:
    """Whether a contender's results depend on a seed (learned models, River's trees)."""
    match = _PATTERN.match(contender)
    return match is not None and (match["name"] in DETECTORS or match["name"] == "river_HST")


# ---------------------------------------------------------------------- cells
@lru_cache(maxsize=1)
def _source_hash() -> str:
    digest = hashlib.sha1()
    package = Path(streammem.__file__).parent
    bench = Path(__file__).parent
    for path in [*sorted(package.rglob("*.py")), bench / "nab.py", bench / "stream.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cell_path(cache_dir: Path, contender: str, seed: int | None, names: Sequence[str]) -> Path:
    key = json.dumps([contender, seed, list(names), _source_hash()])
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return cache_dir / f"{re.sub(r'[^A-Za-z0-9@:_-]', '_', contender)}-{seed}-{digest}.npz"


def run_cell(contender: str, seed: int | None, corpus: Sequence[Series], cache_dir: Path) -> Cell:
    """Every series of ``corpus`` through one contender (cached)."""
    names = [s.name for s in corpus]
    path = _cell_path(cache_dir, contender, seed, names)
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            likelihood = {n: saved[f"l{i}"] for i, n in enumerate(names)}
            alerts = {n: saved[f"a{i}"] for i, n in enumerate(names)}
            return Cell(contender, seed, likelihood, alerts, float(saved["seconds"]))
    started = time.perf_counter()
    if contender.startswith("shared:"):
        outputs = _shared(contender.removeprefix("shared:"), seed, corpus)
    else:
        run = _runner(contender, 0 if seed is None else seed)
        outputs = {s.name: run(s) for s in corpus}
    seconds = time.perf_counter() - started
    cache_dir.mkdir(parents=True, exist_ok=True)
    arrays = {f"l{i}": outputs[n][0] for i, n in enumerate(names)}
    arrays |= {f"a{i}": outputs[n][1] for i, n in enumerate(names)}
    np.savez(path, seconds=seconds, **arrays)
    return Cell(
        contender,
        seed,
        {n: outputs[n][0] for n in names},
        {n: outputs[n][1] for n in names},
        seconds,
    )


def _run_cell_job(args: tuple) -> Cell:
    contender, seed, root, names, cache_dir = args
    corpus = NAB(root).series(names)
    return run_cell(contender, seed, corpus, cache_dir)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(__name__, __doc__, quick="4 series", data="nab/", out="nab")
    parser.add_argument(
        "--contenders", help="comma-separated (default: all); NAME#SEED runs that seed only"
    )
    parser.add_argument("--seeds", help="model seeds, e.g. 42,1,2 (the default)")
    parser.add_argument("--series", help="comma-separated NAB files (default: all 41)")
    parser.add_argument("--jobs", type=int, default=1, help="cells run in parallel")
    parser.add_argument("--no-vus", action="store_true", help="skip VUS-PR (slow)")
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / "cache" / "nab")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nab = NAB(args.data_root)
    every = nab.series()
    checks = check_scorer(nab, every)
    for check in checks:
        shown = " / ".join(f"{v:.2f}" for v in check.ours)
        expected = " / ".join(f"{v:.2f}" for v in check.recomputed)
        verdict = "ok" if check.passed else "FAILED"
        print(f"scorer check {check.detector}: {shown} (NAB's code: {expected}): {verdict}")
    names = split_list(args.series, QUICK_SERIES if args.quick else [s.name for s in every])
    corpus = nab.series(names)
    contenders = split_list(args.contenders, QUICK_CONTENDERS if args.quick else DEFAULT_CONTENDERS)
    for text in contenders:
        contender = text.partition("#")[0]
        if not contender.startswith("shared:"):
            _runner(contender, 0)  # unknown names fail here, before anything runs
    seeds = parse_ints(args.seeds) or ([42] if args.quick else list(SEEDS))
    cache_dir = args.cache_dir / "quick" if args.quick else args.cache_dir
    jobs = []
    for text in contenders:
        contender, _, pinned = text.partition("#")  # AE#42: that one seed only
        chosen = [int(pinned)] if pinned else seeds
        for seed in chosen if is_seeded(contender) else [None]:
            jobs.append((contender, seed, args.data_root, names, cache_dir))
    started = time.perf_counter()
    cells: list[Cell] = []
    with tqdm(total=len(jobs), unit="cell", desc="bench.nab") as bar:
        if args.jobs > 1:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
                for cell in pool.map(_run_cell_job, jobs):
                    cells.append(cell)
                    bar.update()
        else:
            for job in jobs:
                bar.set_postfix_str(f"{job[0]} seed {job[1]}")
                cells.append(_run_cell_job(job))
                bar.update()
    out = report_dir(args, "nab", cache_dir / "report")
    command = "python -m bench.nab " + shlex.join(argv if argv is not None else sys.argv[1:])
    written = write_report(
        cells, corpus, nab, checks, out, command, time.perf_counter() - started, not args.no_vus
    )
    print(f"reports: {', '.join(str(p) for p in written)}")
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
