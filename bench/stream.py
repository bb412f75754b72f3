"""Prequential quality on real streams: ``python -m bench.stream``.

The protocol of ``shared/research/streaming-benchmarks.md``:

1. Order: ``numpy.random.default_rng(0).permutation(n)``, cut to the first ``--max-events``
   (50,000) events.
2. Every event is scored before it is learned. streammem detectors (default arguments) get
   consecutive DataFrames of 256 rows, ``score_many`` then ``learn_many``, columns
   ``f0..f{d-1}``; River and PySAD peers go event by event (``score_one`` then ``learn_one``;
   PySAD ``fit_score_partial``). No detector sees a label.
3. AUROC and AUPRC over every event after a warm-up of ``min(1000, 10 % of n)`` events, and a
   learning curve: AUROC from the warm-up to the 2k-th, 5k-th and 10k-th event.
4. The **floor** scores each event by the mean squared z-score of its features under the
   running mean and standard deviation of all earlier events: no model at all.
5. Offline references (not streaming; they see every row first): scikit-learn's
   ``IsolationForest(random_state=0)``.

Data: the 35 ADBench sets in ``<data root>/adbench/`` (``adbench:<name>``) and the KDDCUP99 10 %
set as a stream of raw records (``kddcup``: 41 fields, three of them strings; the minority
``normal.`` traffic is the anomaly class, DAGMM's convention). streammem reads its records
through the public API, strings included; the peers, which take numbers only, get the three
string fields one-hot encoded over the whole file.

Cells (data set x contender) are cached under ``--cache-dir`` by the hash of everything that
decides them (for streammem: the source its scores depend on), so an interrupted run resumes and a
code change reruns only streammem's cells. Reports go to ``--out`` (see
:mod:`bench.stream_report`).

Examples
--------
The CI smoke run (four small sets, streammem, the floor and River's HalfSpaceTrees)::

    python -m bench.stream --quick

Everything (the PySAD peers need ``pip install -e '.[peers]'``)::

    python -m bench.stream

Two budgets of MemAE against the floor on three sets::

    python -m bench.stream --datasets adbench:wine,adbench:glass,kddcup \\
        --contenders "floor,MemAE,MemAE[schedule=Schedule(budget=4)]"
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import itertools
import json
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench.cli import bench_parser, report_dir, split_list, variant_kwargs, variant_sources
from bench.datasets import KDDCUP99, ADBench, DataMissing
from bench.stream_report import StreamResult, write_reports

__all__ = [
    "CONTENDERS",
    "Contender",
    "StreamData",
    "iforest_asd_scores",
    "load_stream",
    "main",
    "parse_contender",
    "run_cell",
    "stream_metrics",
]

BENCH_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = BENCH_DIR.parent / "streammem"
CACHE_VERSION = 1
MAX_EVENTS = 50_000
BATCH = 256
CURVE_POINTS = (2_000, 5_000, 10_000)
QUICK_DATASETS = ("adbench:wine", "adbench:glass", "adbench:vertebral", "adbench:WBC")
QUICK_CONTENDERS = ("MemAE", "AE", "floor", "linear", "IForestASD", "river_HST")


# ---------------------------------------------------------------------------------- data
@dataclasses.dataclass
class StreamData:
    """One stream in protocol order: numeric features ``X``, labels ``y`` (1 = anomaly) and,
    where the stream has them, the raw records (``frame``) that streammem reads instead."""

    name: str
    X: np.ndarray
    y: np.ndarray
    frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.y)


def _order(n: int, max_events: int) -> np.ndarray:
    return np.random.default_rng(0).permutation(n)[:max_events]


@lru_cache(maxsize=2)
def _kdd_records(root: str | None, download: bool) -> pd.DataFrame:
    return KDDCUP99(root, download).records()


def load_stream(
    name: str, root: str | None = None, download: bool = False, max_events: int = MAX_EVENTS
) -> StreamData:
    """``adbench:<set>`` or ``kddcup``, in the protocol's order."""
    if name == "kddcup":
        records = _kdd_records(root, download)
        order = _order(len(records), max_events)
        frame = records.iloc[order].reset_index(drop=True)
        y = (frame.pop("label") == "normal.").to_numpy(np.int64)
        numeric = pd.get_dummies(records.drop(columns="label"), columns=list(KDDCUP99.categorical))
        return StreamData(name, numeric.iloc[order].to_numpy(np.float64), y, frame)
    kind, _, set_name = name.partition(":")
    if kind != "adbench" or not set_name:
        raise ValueError(f"unknown stream {name!r}: use 'adbench:<set>' or 'kddcup'")
    split = ADBench(root, download).load_set(set_name)
    order = _order(len(split.y), max_events)
    return StreamData(name, split.x[order], split.y[order])


def all_streams() -> list[str]:
    return [f"adbench:{s}" for s in ADBench.set_names()] + ["kddcup"]


# ---------------------------------------------------------------------------------- contenders
@dataclasses.dataclass(frozen=True)
class Contender:
    """A column of the table: how to score a stream, and what decides its result."""

    name: str
    group: str  # streammem, floor, reference, river, pysad, iforest, rrcf, capymoa, offline
    run: Callable[[StreamData, dict[str, Any]], np.ndarray]
    params: tuple[tuple[str, str], ...] = ()  # (name, source text) of constructor overrides

    def kwargs(self) -> dict[str, Any]:
        return variant_kwargs(self.params)

    def fingerprint(self) -> str:
        """What, besides the data, decides this contender's scores."""
        if self.group in ("streammem", "floor", "reference"):
            return _source_hash()
        package = _PACKAGES[self.group]
        version = f"{package} {importlib.metadata.version(package)}"
        return f"{version} {_source_hash()}" if self.group == "iforest" else version


# The library behind each peer group (its version decides the peer's scores).
_PACKAGES = {
    "river": "river",
    "pysad": "pysad",
    "offline": "scikit-learn",
    "iforest": "scikit-learn",
    "rrcf": "rrcf",
    "capymoa": "capymoa",
}


# What a detector's scores depend on (not the service, the CLI or the alert wrapper).
_SCORING_SOURCES = ("detectors", "nn", "features", "learning")


@lru_cache(maxsize=1)
def _source_hash() -> str:
    digest = hashlib.sha1()
    paths = [PACKAGE_DIR / part for part in _SCORING_SOURCES]
    files = [p for path in paths for p in (sorted(path.rglob("*.py")) if path.is_dir() else [path])]
    for path in [*files, Path(__file__), BENCH_DIR / "references.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _streammem(detector_name: str) -> Callable[[StreamData, dict[str, Any]], Scored]:
    def run(data: StreamData, kwargs: dict[str, Any]) -> Scored:
        import streammem

        detector = getattr(streammem, detector_name)(**kwargs)
        frame = data.frame
        if frame is None:
            frame = pd.DataFrame(data.X, columns=[f"f{i}" for i in range(data.X.shape[1])])
        scores = np.empty(len(frame))
        fit = FitCurve(len(frame))
        for start in range(0, len(frame), BATCH):
            # read once for both calls: the same scores and model as score_many(batch) then
            # learn_many(batch) (tests/test_conformance.py), at half the encoding cost
            batch = detector.encode_many(frame.iloc[start : start + BATCH])
            scores[start : start + BATCH] = detector.score_many(batch)
            detector.learn_many(batch)
            fit.observe(start + len(batch), detector.fit_r2_)
        return scores, fit.metrics()

    return run


Scored = np.ndarray | tuple[np.ndarray, dict[str, float | None]]


class FitCurve:
    """The median over fields of a detector's prequential R² (``fit_r2_``) as the stream
    passes each of ``CURVE_POINTS`` and at its end."""

    def __init__(self, n_events: int) -> None:
        self.n_events = n_events
        self.values: dict[str, float | None] = {}

    def observe(self, seen: int, r2: dict) -> None:
        for point in (*CURVE_POINTS, self.n_events):
            name = "fit_r2" if point == self.n_events else f"fit_r2_{point // 1000}k"
            if seen >= point and name not in self.values:
                finite = [v for v in r2.values() if np.isfinite(v)]
                self.values[name] = float(np.median(finite)) if finite else None

    def metrics(self) -> dict[str, float | None]:
        return dict(self.values)


def _linear(data: StreamData, kwargs: dict[str, Any]) -> Scored:
    """The streaming linear reference (:class:`bench.references.StreamingPCA`), on the
    streammem detectors' protocol: DataFrames of 256 rows, scored then learned."""
    from bench.references import StreamingPCA

    reference = StreamingPCA()
    frame = data.frame
    if frame is None:
        frame = pd.DataFrame(data.X, columns=[f"f{i}" for i in range(data.X.shape[1])])
    scores = np.empty(len(frame))
    fit = FitCurve(len(frame))
    for start in range(0, len(frame), BATCH):
        batch = frame.iloc[start : start + BATCH]
        scores[start : start + BATCH] = reference.score_many(batch)
        reference.learn_many(batch)
        fit.observe(start + len(batch), reference.fit_r2_)
    return scores, fit.metrics()


def iforest_asd_scores(X: np.ndarray, window: int = 2048, seed: int = 0) -> np.ndarray:
    """IForestASD (Ding & Fei 2013) as PySAD runs it with its defaults, on a whole stream:
    scikit-learn's ``IsolationForest`` (100 trees of 256 samples, contamination 0.1) refitted
    on the events so far whenever their number is a power of two, until ``window`` have
    arrived, then every ``window`` events on the last ``window``. Each event is scored by the
    forest fitted before it (0 before the first); the score is the forest's decision function,
    negated (higher = more anomalous). Scoring runs in one call per forest: the same scores
    as event by event, at the speed a whole stream needs.
    """
    from sklearn.ensemble import IsolationForest

    n = len(X)
    fits = [2**k for k in range(window.bit_length()) if 2**k < min(window, n)]
    fits += list(range(window, n, window))
    scores = np.zeros(n)
    for fit_at, until in itertools.pairwise([*fits, n]):
        rows = X[max(0, fit_at - window) : fit_at]
        forest = IsolationForest(contamination=0.1, random_state=seed).fit(rows)
        scores[fit_at:until] = -forest.decision_function(X[fit_at:until])
    return scores


def _iforest_asd(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
    return iforest_asd_scores(data.X)


def _rrcf(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
    """Robust Random Cut Forest (Guha et al. 2016) with the ``rrcf`` package's documented
    streaming defaults: 40 trees of at most 256 points; each event is inserted into every tree
    (the oldest point forgotten once a tree is full) and scores its mean collusive
    displacement."""
    forest = [_rrcf_tree_class()(random_state=tree) for tree in range(40)]
    scores = np.empty(len(data))
    for index, point in enumerate(data.X):
        total = 0.0
        for tree in forest:
            if len(tree.leaves) > 256:
                tree.forget_point(index - 257)
            tree.insert_point(point, index=index)
            total += tree.codisp(index)
        scores[index] = total / len(forest)
    return scores


def _rrcf_tree_class() -> type:
    """``rrcf.RCTree``, loaded from the package's own module: the package's ``__init__``
    imports ``pkg_resources``, which setuptools 81 and later no longer ship."""
    import importlib.util

    spec = importlib.util.find_spec("rrcf")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("rrcf is not installed (pip install -e '.[peers]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "rrcf.py"
    module_spec = importlib.util.spec_from_file_location("_rrcf_trees", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.RCTree


def _capymoa_oif(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
    """CapyMOA's Online Isolation Forest (Leveni et al., ICML 2024) with its defaults, event
    by event (``score_instance`` then ``train``)."""
    from capymoa.anomaly import OnlineIsolationForest
    from capymoa.stream import NumpyStream

    stream = NumpyStream(data.X, np.zeros(len(data), dtype=int))
    model = OnlineIsolationForest(schema=stream.get_schema(), random_seed=1)
    scores = np.empty(len(data))
    for index in range(len(data)):
        instance = stream.next_instance()
        scores[index] = model.score_instance(instance)
        model.train(instance)
    return scores


def floor_scores(X: np.ndarray) -> np.ndarray:
    """Mean squared z-score of each row under the mean and std of all earlier rows (0 first).

    Features that have been constant so far have no scale yet and add nothing.
    """
    shift = X[0]
    centred = X - shift
    count = np.arange(len(X), dtype=np.float64)[:, None]
    before = np.maximum(count, 1)
    sums = np.cumsum(centred, axis=0) - centred
    squares = np.cumsum(centred**2, axis=0) - centred**2
    mean = sums / before
    var = np.maximum(squares / before - mean**2, 0.0)
    std = np.sqrt(var)
    z = np.divide(centred - mean, std, out=np.zeros_like(X), where=std > 1e-12)
    return (z**2).mean(axis=1)


def _floor(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
    return floor_scores(data.X)


def _rows(X: np.ndarray) -> list[dict[str, float]]:
    names = [f"f{i}" for i in range(X.shape[1])]
    return [dict(zip(names, row, strict=True)) for row in X.tolist()]


def _river(make: Callable[[], Any]) -> Callable[[StreamData, dict[str, Any]], np.ndarray]:
    def run(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
        model = make()
        scores = np.empty(len(data))
        for i, x in enumerate(_rows(data.X)):
            scores[i] = model.score_one(x)
            model.learn_one(x)
        return scores

    return run


def _river_hst() -> Any:
    from river import anomaly, preprocessing

    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)


def _river_loda() -> Any:
    from river import anomaly, preprocessing

    return preprocessing.StandardScaler() | anomaly.LODA(seed=42)


def _river_ocsvm() -> Any:
    from river import anomaly, preprocessing

    return preprocessing.StandardScaler() | anomaly.OneClassSVM(nu=0.02)


def _pysad(make: Callable[[np.ndarray], Any]) -> Callable[[StreamData, dict[str, Any]], np.ndarray]:
    def run(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
        model = make(data.X)
        scores = np.empty(len(data))
        for i, x in enumerate(data.X):
            scores[i] = model.fit_score_partial(x)
        return scores

    return run


def _pysad_rshash(X: np.ndarray) -> Any:
    from pysad.models import RSHash

    # PySAD's documented use: the feature bounds of the whole stream, given up front.
    return RSHash(X.min(axis=0), X.max(axis=0), random_state=42)


def _pysad_loda(X: np.ndarray) -> Any:
    from pysad.models import LODA

    return LODA(random_state=42)


def _pysad_xstream(X: np.ndarray) -> Any:
    from pysad.models import xStream

    return xStream(random_state=42)


def _offline_iforest(data: StreamData, kwargs: dict[str, Any]) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(random_state=0).fit(data.X)
    return -forest.score_samples(data.X)


STREAMMEM_DETECTORS = ("MemAE", "AE", "Memorizer", "RFTM")

CONTENDERS: dict[str, Contender] = {
    **{name: Contender(name, "streammem", _streammem(name)) for name in STREAMMEM_DETECTORS},
    "floor": Contender("floor", "floor", _floor),
    "river_HST": Contender("river_HST", "river", _river(_river_hst)),
    "river_LODA": Contender("river_LODA", "river", _river(_river_loda)),
    "river_OCSVM": Contender("river_OCSVM", "river", _river(_river_ocsvm)),
    "pysad_RSHash": Contender("pysad_RSHash", "pysad", _pysad(_pysad_rshash)),
    "pysad_LODA": Contender("pysad_LODA", "pysad", _pysad(_pysad_loda)),
    "pysad_xStream": Contender("pysad_xStream", "pysad", _pysad(_pysad_xstream)),
    "linear": Contender("linear", "reference", _linear),
    "IForestASD": Contender("IForestASD", "iforest", _iforest_asd),
    "RRCF": Contender("RRCF", "rrcf", _rrcf),
    "OnlineIForest": Contender("OnlineIForest", "capymoa", _capymoa_oif),
    "offline_IForest": Contender("offline_IForest", "offline", _offline_iforest),
}

_VARIANT = re.compile(r"^(?P<base>\w+)\[(?P<params>.*)\]$")


def parse_contender(text: str) -> Contender:
    """``MemAE`` or a streammem variant ``MemAE[key=expr;key=expr]`` (expressions may use the
    names ``streammem`` exports, e.g. ``MemAE[schedule=Schedule(budget=4)]``)."""
    text = text.strip()
    match = _VARIANT.match(text)
    if match is None:
        if text not in CONTENDERS:
            raise ValueError(f"unknown contender {text!r}; choose from {list(CONTENDERS)}")
        return CONTENDERS[text]
    base = CONTENDERS.get(match["base"])
    if base is None or base.group != "streammem":
        raise ValueError(f"{text!r}: only streammem detectors take parameters")
    return dataclasses.replace(base, name=text, params=variant_sources(match["params"]))


def available(contender: Contender) -> bool:
    """Whether the contender's library is installed (the peers are an optional extra), and
    for CapyMOA a Java runtime."""
    package = {"pysad": "pysad", "rrcf": "rrcf", "capymoa": "capymoa"}.get(contender.group)
    if package is None:
        return True
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return package != "capymoa" or shutil.which("java") is not None


# ---------------------------------------------------------------------------------- metrics
def warmup_events(n: int) -> int:
    return min(1000, n // 10)


def _auroc(y: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else None


def stream_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float | int | None]:
    """AUROC / AUPRC after the warm-up, the learning curve, and the non-finite count.

    Non-finite scores rank above every finite one (a model that blows up on an event has at
    least noticed it), and are counted so that the table can say so.
    """
    from sklearn.metrics import average_precision_score

    nonfinite = ~np.isfinite(scores)
    finite_max = scores[~nonfinite].max() if (~nonfinite).any() else 0.0
    ranked = np.where(nonfinite, finite_max + 1.0, scores)
    start = warmup_events(len(y))
    y_eval, s_eval = y[start:], ranked[start:]
    metrics: dict[str, float | int | None] = {
        "events": len(y),
        "warmup": start,
        "anomalies": int(y_eval.sum()),
        "nonfinite": int(nonfinite.sum()),
        "auroc": _auroc(y_eval, s_eval),
        "auprc": float(average_precision_score(y_eval, s_eval)) if y_eval.any() else None,
    }
    for point in CURVE_POINTS:
        metrics[f"auroc_{point // 1000}k"] = (
            _auroc(y[start:point], ranked[start:point]) if len(y) >= point else None
        )
    return metrics


# ---------------------------------------------------------------------------------- cells
def _cell_key(dataset: str, contender: Contender, max_events: int) -> str:
    config = {
        "version": CACHE_VERSION,
        "dataset": dataset,
        "contender": contender.name,
        "params": contender.params,
        "fingerprint": contender.fingerprint(),
        "max_events": max_events,
        "batch": BATCH,
    }
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


def _cache_path(cache_dir: Path, dataset: str, contender: Contender, max_events: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{dataset}-{contender.name}")[:80]
    return cache_dir / f"{safe}-{_cell_key(dataset, contender, max_events)}.json"


def run_cell(
    dataset: str,
    contender: Contender,
    cache_dir: Path,
    root: str | None = None,
    download: bool = False,
    max_events: int = MAX_EVENTS,
) -> StreamResult:
    """The cached result, else run the contender on the stream and cache it."""
    path = _cache_path(cache_dir, dataset, contender, max_events)
    if path.is_file():
        return StreamResult(**json.loads(path.read_text()))
    if not available(contender):
        return StreamResult(dataset, contender.name, contender.group, "not installed")
    try:
        data = load_stream(dataset, root, download, max_events)
    except DataMissing as err:
        print(f"  {dataset}: data missing ({err})", file=sys.stderr)
        return StreamResult(dataset, contender.name, contender.group, "data missing")
    started = time.perf_counter()
    scored = contender.run(data, contender.kwargs())
    scores, extra = scored if isinstance(scored, tuple) else (scored, {})
    seconds = time.perf_counter() - started
    metrics = {**stream_metrics(data.y, np.asarray(scores, dtype=np.float64)), **extra}
    result = StreamResult(dataset, contender.name, contender.group, "ok", metrics, seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result)) + "\n")
    return result


# ---------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(
        __name__,
        __doc__,
        quick="4 small sets",
        data="adbench/ and kddcup99/",
        download=True,
        out="stream",
        epilog="Contenders: " + ", ".join(CONTENDERS),
    )
    parser.add_argument("--datasets", help="comma-separated streams (default: all 36)")
    parser.add_argument("--contenders", help="comma-separated contenders (default: all)")
    parser.add_argument("--max-events", type=int, default=MAX_EVENTS)
    parser.add_argument("--cache-dir", type=Path, default=BENCH_DIR / "cache" / "stream")
    parser.add_argument("--no-report", action="store_true", help="run cells only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    datasets = split_list(args.datasets, QUICK_DATASETS if args.quick else all_streams())
    names = split_list(args.contenders, QUICK_CONTENDERS if args.quick else list(CONTENDERS))
    contenders = [parse_contender(name) for name in names]
    cache_dir = args.cache_dir / "quick" if args.quick else args.cache_dir
    out = report_dir(args, "stream", cache_dir / "report")
    results = []
    started = time.perf_counter()
    cells = [(d, c) for c in contenders for d in datasets]
    with tqdm(cells, unit="cell", desc="bench.stream") as bar:
        for dataset, contender in bar:
            bar.set_postfix_str(f"{contender.name} on {dataset}")
            results.append(
                run_cell(
                    dataset, contender, cache_dir, args.data_root, args.download, args.max_events
                )
            )
    skipped = sorted({r.contender for r in results if r.status == "not installed"})
    if skipped:
        print(f"not installed (pip install -e '.[peers]'): {', '.join(skipped)}")
    if not args.no_report:
        command = "python -m bench.stream " + shlex.join(argv if argv is not None else sys.argv[1:])
        written = write_reports(results, out, command, time.perf_counter() - started)
        print(f"reports: {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
