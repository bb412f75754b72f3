"""NAB's scoring, written from its definition (Lavin & Ahmad, "Evaluating real-time anomaly
detection algorithms: the Numenta Anomaly Benchmark", 2015; NAB v1.1's profiles and windows).

A detector gives every row of a series an anomaly score; a row whose score is at least the
threshold is a detection. Each labelled window earns the weight of its **earliest** detection,
``tp_weight * sigma(-5 p) ...`` on the scaled sigmoid of the detection's relative position in
the window (``p = -1`` at its first row, so an early detection earns the full ``tp_weight``,
one at its last row almost nothing); a window with no detection costs ``fn_weight``. Every
detection outside a window costs ``fp_weight``, less when it falls just after a window (the
sigmoid of its distance past the window's end, in window widths). The first 15 % of each
series (at most 750 rows) is probationary: never scored. One threshold is chosen for the
whole corpus (the one that maximises the corpus's raw score), and the raw score is normalised
so that the null detector (it never detects: every window missed) scores 0 and the perfect
one (every window detected at its first row, nothing else) 100.

Validated in ``tests/test_nab.py`` against the published detectors' scores (NAB's own results
files, recomputed with NAB's code on the shared 41 files) and by ``python -m bench.nab``, which
fails when a published detector is not reproduced to 0.1.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from bench.datasets import Dataset

__all__ = [
    "NAB",
    "PROFILES",
    "Profile",
    "Series",
    "corpus_score",
    "normalised_scores",
    "per_series_auroc",
    "scaled_sigmoid",
    "score_at",
    "vus_pr",
]

#: NAB's three application profiles, in its order.
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

PROBATION = 0.15  # share of each series never scored
PROBATION_CAP = 5000  # ... of at most PROBATION * PROBATION_CAP rows


@dataclasses.dataclass(frozen=True)
class Profile:
    """A cost matrix: what an early detection earns, a miss and a false positive cost."""

    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclasses.dataclass
class Series:
    """One NAB file: its timestamps, values and labelled windows (row index ranges,
    inclusive)."""

    name: str
    timestamps: pd.Series
    values: np.ndarray
    windows: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.values)

    @property
    def probation(self) -> int:
        """Rows at the start that are never scored: ``min(floor(0.15 n), 750)``."""
        return int(min(math.floor(PROBATION * len(self)), PROBATION * PROBATION_CAP))

    @property
    def labels(self) -> np.ndarray:
        """1 inside a window, 0 elsewhere."""
        labels = np.zeros(len(self), dtype=np.int64)
        for start, end in self.windows:
            labels[start : end + 1] = 1
        return labels


class NAB(Dataset):
    """The 41 NAB v1.1 series that ``../shared/datasets/nab`` holds, their windows, NAB's
    profiles and five published detectors' scores on them, each file MD5-checked. Never
    downloaded: the other 17 series are held out."""

    name = "nab"
    folder = "nab"
    resources: ClassVar[list[tuple[str, str]]] = [
        ("config/profiles.json", "2af1c313284c4788fc079a5aeeea7816"),
        ("data/artificialNoAnomaly/art_daily_no_noise.csv", "2a972131fc973ce3bf657a7646424122"),
        (
            "data/artificialNoAnomaly/art_daily_perfect_square_wave.csv",
            "7204f333e0bf3c08dc4e39e7eaf542e6",
        ),
        ("data/artificialNoAnomaly/art_daily_small_noise.csv", "415a45c424a0a893bdc7089709cb3ae3"),
        ("data/artificialNoAnomaly/art_flatline.csv", "3cbbec0d3c1a0450414b52077f474c53"),
        ("data/artificialNoAnomaly/art_noisy.csv", "f36b0ac2c09c78c7724b6846c660bbbe"),
        ("data/artificialWithAnomaly/art_daily_flatmiddle.csv", "50627637feb00e11fb5c429c1e2692eb"),
        ("data/artificialWithAnomaly/art_daily_jumpsdown.csv", "e9ca9d20a32d5553b7e83ea9f3689369"),
        ("data/artificialWithAnomaly/art_daily_jumpsup.csv", "295288850f680beef1c0a42a57d07167"),
        ("data/artificialWithAnomaly/art_daily_nojump.csv", "e0217a357ef5f5dc8383fa52a9fa9c0e"),
        (
            "data/artificialWithAnomaly/art_increase_spike_density.csv",
            "8c3f32e6fcf8bb19690dfaccbeca252a",
        ),
        (
            "data/artificialWithAnomaly/art_load_balancer_spikes.csv",
            "2bfee3910d2acff2600df30f23d009d1",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
            "670f5fea6e97b1725fdfc1d7ea8c5249",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv",
            "2ccb238a824fe1a0d5ba40edd8bd7258",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
            "852c8473584b2bb4b34a2cc107b55eda",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv",
            "e9259ab08445b0584eaf7169f744c4b0",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
            "85ed1cc00d26de5c921a0af2c6019a5b",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv",
            "14a0e0d6b9d46a2dbdcfac9464336c02",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv",
            "fb19d87d3e38a725da145681a86ff442",
        ),
        (
            "data/realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv",
            "5211650f0dfd20bf8f1304ba46c37e0f",
        ),
        (
            "data/realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv",
            "be2a8194a63fee9db0a0fff5a13595ae",
        ),
        (
            "data/realAWSCloudwatch/ec2_disk_write_bytes_c0d644.csv",
            "c96f95d28c564d050179954973d7c3c2",
        ),
        ("data/realAWSCloudwatch/ec2_network_in_257a54.csv", "82ac6c4d6279d402465f18ea5a182ec1"),
        ("data/realAWSCloudwatch/ec2_network_in_5abac7.csv", "d7c530dccbef98bc4c9cabee966e5eea"),
        ("data/realAWSCloudwatch/elb_request_count_8c0756.csv", "f8cadcb1b5622b7087b86a6f299b5b7c"),
        ("data/realAWSCloudwatch/grok_asg_anomaly.csv", "bc88304f35513e99d592bdec3663104c"),
        (
            "data/realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
            "06483b7cc2be2078ca4bc9c88192a828",
        ),
        (
            "data/realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv",
            "e1498abcc54c6564e81d26c47c837365",
        ),
        (
            "data/realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
            "e2a7925707f7296a884190070d43ee0d",
        ),
        ("data/realAdExchange/exchange-2_cpc_results.csv", "5709999ae3a64c598f01a1a94b8fff2b"),
        ("data/realAdExchange/exchange-2_cpm_results.csv", "0ed20905ff8a57d1643ed1366a95eaf8"),
        ("data/realAdExchange/exchange-3_cpc_results.csv", "f0577f6adfce2b8e26c81d6e7d548011"),
        ("data/realAdExchange/exchange-3_cpm_results.csv", "d2efba8ed2f0206408e861383dbb7f03"),
        ("data/realAdExchange/exchange-4_cpc_results.csv", "8adfb571860d3a9fcb9c89904011d477"),
        ("data/realAdExchange/exchange-4_cpm_results.csv", "db2fd4e3f3151eb3ee2d7e3b46d9de6c"),
        ("data/realTraffic/TravelTime_387.csv", "d0af3020e4e15cbe840a2cafbb5750df"),
        ("data/realTraffic/TravelTime_451.csv", "cef6762eb4b297399e04fe16a325fa78"),
        ("data/realTraffic/occupancy_6005.csv", "3c93a137d33b00fc15de5cd16c83628f"),
        ("data/realTraffic/occupancy_t4013.csv", "0d23e04a73b439cb3394c4d132ec2697"),
        ("data/realTraffic/speed_6005.csv", "350969d1826a25aa8fc606398f0d66e0"),
        ("data/realTraffic/speed_7578.csv", "3fe21df810be6b31520d83b6f889d8b5"),
        ("data/realTraffic/speed_t4013.csv", "385199e156951a63d87c7d839eee2224"),
        ("labels/combined_windows.json", "d35580762c5f9536847a9cc947e321d5"),
        ("published/ARTime.scores.csv.gz", "077ed59a5151caf8f32d4a1565b40ea8"),
        ("published/knncad.scores.csv.gz", "5aabaf8e7de04d6ac7706c4b588f1c6c"),
        ("published/numenta.scores.csv.gz", "b0faa1783146022f44f99ded1af58cfd"),
        ("published/randomCutForest.scores.csv.gz", "ed895eafd5dc2254c50f46df33073c3a"),
        ("published/windowedGaussian.scores.csv.gz", "548b5327f95ba217909372bcf360b2e1"),
    ]

    #: The published detectors whose scores ``published/`` holds.
    PUBLISHED = ("numenta", "ARTime", "randomCutForest", "knncad", "windowedGaussian")

    def profiles(self) -> dict[str, Profile]:
        """NAB's ``config/profiles.json``: ``{name: Profile}``."""
        raw = json.loads(self.path("config/profiles.json").read_text())
        return {
            name: Profile(
                float(raw[name]["CostMatrix"]["tpWeight"]),
                float(raw[name]["CostMatrix"]["fpWeight"]),
                float(raw[name]["CostMatrix"]["fnWeight"]),
            )
            for name in PROFILES
        }

    def file_names(self) -> list[str]:
        """The labelled series, ``"artificialNoAnomaly/art_daily_no_noise.csv"`` ..."""
        return sorted(self._windows())

    def _windows(self) -> dict[str, list[list[str]]]:
        return json.loads(self.path("labels/combined_windows.json").read_text())

    def series(self, names: Sequence[str] | None = None) -> list[Series]:
        """The series (all, or ``names``), each with its windows as row ranges;
        ``ValueError`` if a window's edge is not one of its file's timestamps."""
        windows = self._windows()
        out = []
        for name in self.file_names() if names is None else names:
            frame = pd.read_csv(self.path(f"data/{name}"))
            stamps = pd.to_datetime(frame["timestamp"])
            index = {stamp: i for i, stamp in enumerate(stamps)}
            ranges = []
            for start, end in windows[name]:
                try:
                    ranges.append((index[pd.Timestamp(start)], index[pd.Timestamp(end)]))
                except KeyError as err:
                    raise ValueError(f"{name}: window edge {err} is not in the file") from err
            out.append(Series(name, stamps, frame["value"].to_numpy(np.float64), ranges))
        return out

    def published(self, detector: str) -> dict[str, np.ndarray]:
        """A published detector's anomaly scores, ``{series name: scores}``."""
        if detector not in self.PUBLISHED:
            raise ValueError(f"no published scores of {detector!r}; known: {self.PUBLISHED}")
        frame = pd.read_csv(self.path(f"published/{detector}.scores.csv.gz"))
        return {
            name: group["anomaly_score"].to_numpy(np.float64)
            for name, group in frame.groupby("file", sort=False)
        }

    def load(self, train: bool = True):  # pragma: no cover - NAB is read series by series
        raise TypeError("NAB holds many series: use series()")


def scaled_sigmoid(position: np.ndarray) -> np.ndarray:
    """``2 sigma(-5 p) - 1``, and -1 beyond 3 window widths past a window.

    Examples
    --------
    >>> scaled_sigmoid(np.array([-1.0, 0.0, 0.5, 4.0])).round(4).tolist()
    [0.9866, 0.0, -0.8483, -1.0]
    """
    position = np.asarray(position, dtype=np.float64)
    value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


_MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


def _sweep(series: Series, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Each row's weight if it were a detection, and its window's number (-1 outside any
    window), the probationary rows left out (both arrays start at the first scored row)."""
    n = len(series)
    weight = np.empty(n)
    window = np.full(n, -1, dtype=np.int64)
    previous_end, previous_width = None, None
    edges = [*series.windows, (n, n)]
    row = 0
    for number, (start, end) in enumerate(edges):
        # rows before this window: false positives, charged less just after the last window
        gap = np.arange(row, min(start, n))
        if previous_end is None:
            weight[gap] = -1.0 * profile.fp_weight
        else:
            past = np.abs(previous_end - gap) / float(previous_width - 1)
            weight[gap] = scaled_sigmoid(past) * profile.fp_weight
        if start >= n:
            break
        rows = np.arange(start, end + 1)
        width = float(end - start + 1)
        position = -(end - rows + 1) / width
        weight[rows] = scaled_sigmoid(position) * profile.tp_weight / _MAX_TP
        window[rows] = number
        previous_end, previous_width, row = end, width, end + 1
    first = series.probation
    return weight[first:], window[first:]


@dataclasses.dataclass
class _Sweep:
    """The scored rows of a corpus, one detector's scores, ready for any threshold."""

    scores: np.ndarray
    weights: np.ndarray
    windows: np.ndarray  # corpus-wide window number, -1 outside
    n_windows: int
    fn_weight: float


def _corpus_sweep(
    series: Sequence[Series], scores: Mapping[str, np.ndarray], profile: Profile
) -> _Sweep:
    parts_s, parts_w, parts_k = [], [], []
    offset = 0
    for s in series:
        values = np.asarray(scores[s.name], dtype=np.float64)
        if len(values) != len(s):
            raise ValueError(f"{s.name}: {len(values)} scores for {len(s)} rows")
        weight, window = _sweep(s, profile)
        parts_s.append(values[s.probation :])
        parts_w.append(weight)
        parts_k.append(np.where(window >= 0, window + offset, -1))
        offset += len(s.windows)
    return _Sweep(
        np.concatenate(parts_s),
        np.concatenate(parts_w),
        np.concatenate(parts_k),
        offset,
        profile.fn_weight,
    )


def _scores_by_threshold(sweep: _Sweep) -> tuple[np.ndarray, np.ndarray]:
    """The raw score of every threshold worth trying: ``(thresholds, scores)``, the first
    being ``inf`` (nothing detected), then each distinct score, highest first (detections:
    rows scoring at least it)."""
    order = np.argsort(-sweep.scores, kind="stable")
    scores, weights, windows = sweep.scores[order], sweep.weights[order], sweep.windows[order]
    best = np.full(sweep.n_windows, -sweep.fn_weight)  # a missed window costs fn_weight
    total = float(best.sum())
    thresholds, totals = [math.inf], [total]
    for i in range(len(scores)):
        k = windows[i]
        if k < 0:
            total += weights[i]
        elif weights[i] > best[k]:  # an earlier detection in the window: it earns more
            total += weights[i] - best[k]
            best[k] = weights[i]
        if i + 1 == len(scores) or scores[i + 1] != scores[i]:
            thresholds.append(float(scores[i]))
            totals.append(total)
    return np.array(thresholds), np.array(totals)


def _raw_at(sweep: _Sweep, threshold: float) -> float:
    """The raw score of the detections ``scores >= threshold``."""
    detected = sweep.scores >= threshold
    fp = float(sweep.weights[detected & (sweep.windows < 0)].sum())
    best = np.full(sweep.n_windows, -sweep.fn_weight)
    inside = detected & (sweep.windows >= 0)
    np.maximum.at(best, sweep.windows[inside], sweep.weights[inside])
    return fp + float(best.sum())


@dataclasses.dataclass
class CorpusScore:
    """One detector under one profile: the corpus's threshold, its raw score, and each
    series' raw score at that threshold."""

    threshold: float
    raw: float
    per_series: dict[str, float]


def corpus_score(
    series: Sequence[Series], scores: Mapping[str, np.ndarray], profile: Profile
) -> CorpusScore:
    """The best threshold over the whole corpus and the raw scores at it."""
    sweep = _corpus_sweep(series, scores, profile)
    thresholds, totals = _scores_by_threshold(sweep)
    best = int(np.argmax(totals))  # the first of equals: the highest such threshold
    threshold = float(thresholds[best])
    per_series = {}
    for s in series:
        one = _corpus_sweep([s], scores, profile)
        per_series[s.name] = _raw_at(one, threshold)
    return CorpusScore(threshold, float(totals[best]), per_series)


def normalised_scores(
    series: Sequence[Series],
    scores: Mapping[str, np.ndarray],
    profiles: Mapping[str, Profile],
    n_windows: int | None = None,
) -> dict[str, float]:
    """NAB's final score per profile: ``100 (raw - null) / (perfect - null)``.

    The null detector scores every row alike (its best threshold detects nothing); the
    perfect one earns ``tp_weight`` on each of the ``n_windows`` labelled windows (those of
    ``series`` unless given).
    """
    n_windows = sum(len(s.windows) for s in series) if n_windows is None else n_windows
    null_scores = {s.name: np.full(len(s), 0.5) for s in series}
    out = {}
    for name, profile in profiles.items():
        raw = corpus_score(series, scores, profile).raw
        null = corpus_score(series, null_scores, profile).raw
        perfect = n_windows * profile.tp_weight
        out[name] = 100.0 * (raw - null) / (perfect - null)
    return out


def score_at(
    series: Sequence[Series],
    scores: Mapping[str, np.ndarray],
    profiles: Mapping[str, Profile],
    threshold: float,
    n_windows: int | None = None,
) -> dict[str, float]:
    """NAB's normalised score per profile at a given threshold (nothing optimised): what a
    detector's own alerts earn, with ``scores`` its 0 / 1 flags and ``threshold`` 1."""
    n_windows = sum(len(s.windows) for s in series) if n_windows is None else n_windows
    null_scores = {s.name: np.full(len(s), 0.5) for s in series}
    out = {}
    for name, profile in profiles.items():
        raw = _raw_at(_corpus_sweep(series, scores, profile), threshold)
        null = corpus_score(series, null_scores, profile).raw
        perfect = n_windows * profile.tp_weight
        out[name] = 100.0 * (raw - null) / (perfect - null)
    return out


def per_series_auroc(series: Series, scores: np.ndarray) -> float:
    """AUROC of the scores against the window labels over the scored rows (NaN on a series
    without windows)."""
    from sklearn.metrics import roc_auc_score

    labels = series.labels[series.probation :]
    if labels.min() == labels.max():
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores)[series.probation :]))


def vus_pr(series: Series, scores: np.ndarray, sliding_window: int = 100) -> float:
    """VUS-PR (Paparrizos et al., VLDB 2022) of the scores against the window labels over the
    scored rows, computed by the ``tsb-ad`` package (its ``get_metrics`` default window of
    100 rows); NaN on a series without windows."""
    try:
        from TSB_AD.evaluation.basic_metrics import generate_curve
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "VUS-PR needs the tsb-ad package without its dependencies (they would replace "
            "torch): pip install --no-deps 'TSB-AD==1.5'; or pass --no-vus"
        ) from err

    labels = series.labels[series.probation :]
    if labels.min() == labels.max():
        return math.nan
    values = np.asarray(scores, dtype=np.float64)[series.probation :]
    return float(generate_curve(labels, values, sliding_window, "opt", 250)[-1])
