"""SKAB v0.9 and the protocol of its outlier-detection leaderboard, reimplemented from upstream.

From ``waico/SKAB`` at ``b2c0d46`` (``core/utils.py``, ``core/metrics.py``, ``core/t2.py``,
``core/Isolation_Forest.py`` and the notebooks); ``shared/research/sensor-benchmarks.md`` lists
every step and where it comes from:

* the 34 labelled files (``anomaly-free.csv`` is not used), read with
  ``pd.read_csv(f, sep=";", index_col="datetime", parse_dates=True)``; the 8 sensors are the
  features;
* per file, the first 400 rows train and the rest test (``train_test_split(train_size=400,
  shuffle=False)``); a fresh model per file;
* the **Vanilla-AE rule**: a test row is flagged when its score exceeds
  ``quantile_0.99(training scores) * 5/2``;
* the **Conv-AE rule**: window ``j`` covers rows ``j .. j+59`` of one part (no window crosses
  the split) and scores the mean of its rows' scores; it is anomalous above
  ``quantile_0.999(training window scores) * 4/3``; test row ``d`` is flagged when windows
  ``d-59 .. d-1`` are all anomalous, for ``d`` in ``range(59, n_windows - 59)`` (so it looks 58
  rows ahead; the first 59 and last 118 test rows are never flagged);
* the metric: TP / TN / FP / FN summed over files, ``F1 = TP / (TP + (FP + FN) / 2)``,
  ``FAR = FP / (FP + TN) * 100``, ``MAR = FN / (FN + TP) * 100``.

Upstream's Conv-AE scores a window by the mean over time of its reconstruction residuals; for a
model that scores rows, the mean of its rows' scores is the same thing, and it is what the
rules here apply to every contender alike.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import numpy as np
import pandas as pd

from bench.datasets import Dataset

__all__ = [
    "LEADERBOARD",
    "SKAB",
    "TRAIN_ROWS",
    "WINDOW",
    "Counts",
    "SkabFile",
    "conv_rule",
    "finite_scores",
    "iforest_flags",
    "t2q_flags",
    "vanilla_rule",
]

TRAIN_ROWS = 400
WINDOW = 60

#: The leaderboard of the upstream README (outlier detection): F1, FAR %, MAR %.
LEADERBOARD = (
    ("Conv-AE", 0.78, 13.55, 28.02),
    ("MSET", 0.78, 39.73, 14.13),
    ("T-squared+Q (PCA)", 0.76, 26.62, 24.92),
    ("LSTM-AE", 0.74, 29.96, 25.92),
    ("T-squared", 0.66, 19.21, 42.6),
    ("LSTM-VAE", 0.56, 9.13, 55.03),
    ("Vanilla LSTM", 0.54, 12.54, 59.53),
    ("MSCRED", 0.36, 49.94, 69.88),
    ("Vanilla AE", 0.39, 2.59, 75.15),
    ("Isolation forest", 0.29, 2.56, 82.89),
)


class SKAB(Dataset):
    """The 34 labelled experiment files of SKAB v0.9 (and the unused anomaly-free one)."""

    name = "skab"
    folder = "skab"
    mirrors: ClassVar[list[str]] = ["https://raw.githubusercontent.com/waico/SKAB/master/data"]
    resources: ClassVar[list[tuple[str, str]]] = [
        ("valve1/0.csv", "26f2eb58023a3c778aee6712689da611"),
        ("valve1/1.csv", "d57d78c9be6d41285f9cb0239281238d"),
        ("valve1/2.csv", "0c2ed457da83a1db935c6b48fdfdb185"),
        ("valve1/3.csv", "9289a94e83072365a5fd6a2ba0c675c3"),
        ("valve1/4.csv", "4e87fac5785dc7ee0deaf58465ccea5d"),
        ("valve1/5.csv", "502f050076f38b4c9fc2630248b4dc4e"),
        ("valve1/6.csv", "5bec9f26b5968cef6eebd3d5bd3dcd52"),
        ("valve1/7.csv", "45a5d977aa41f321411f2f875f2b7469"),
        ("valve1/8.csv", "a9171a4dd520f2d6ae0511ab6953222a"),
        ("valve1/9.csv", "b01a9dba9ad2b07e315bc4ace590a5c7"),
        ("valve1/10.csv", "a42bb9eca4603f27f2bbdef6696df8b3"),
        ("valve1/11.csv", "2b5e2d64080dc29b8b29ee44f2359c96"),
        ("valve1/12.csv", "69ee500b5320eea20cc63bb8e08d3cb5"),
        ("valve1/13.csv", "dab6f4c28fe1bee533b366ab1a5fab5c"),
        ("valve1/14.csv", "0b6b8323f9f68609e4c7d3a1d3f54bd5"),
        ("valve1/15.csv", "8794513c422f1d7dbe28a6be1c0b91b9"),
        ("valve2/0.csv", "81f3466bd2478d7e4fb6dab6004c7e74"),
        ("valve2/1.csv", "64cd589414077d0983ad7a10fc82587f"),
        ("valve2/2.csv", "9fae6ac47979853c833c4fd1c17ff445"),
        ("valve2/3.csv", "37fd967884edb15b42e63366876f2fca"),
        ("other/1.csv", "24405bdd205b4375d72c8b619c7504e2"),
        ("other/2.csv", "ee3f2148a5c0a063269ca5c7c3c98910"),
        ("other/3.csv", "7799c089a2c2e5b50f867415ed86e98b"),
        ("other/4.csv", "77b17895e82cb7b4177ffb6149e0be25"),
        ("other/5.csv", "785408ba13ef863dbd68e1bca6f74c3f"),
        ("other/6.csv", "44c2b21f8fac650b12706244e912bd6d"),
        ("other/7.csv", "a95708b9c802b7e7ef964bb22b9ec60a"),
        ("other/8.csv", "11d1b9cb334abb2a4ddb43bc5d18bfbc"),
        ("other/9.csv", "6d829df9735442df03b609b8a5ca8466"),
        ("other/10.csv", "e07fdff2d29586c0fff6fa40ff536b47"),
        ("other/11.csv", "8d89550d4ab1760afc1b505485ae3310"),
        ("other/12.csv", "b3f8afcd885454b9eda97d40e14da79c"),
        ("other/13.csv", "a204ccf62586d735c54cf6009f9a46b9"),
        ("other/14.csv", "01ca923a24281bccf0cf7c34ed94c5ba"),
        ("anomaly-free/anomaly-free.csv", "22c2aacdebf72054c013d485ecb3a493"),
    ]

    @classmethod
    def file_names(cls) -> list[str]:
        """The 34 labelled files, ``"valve1/0"`` ... ``"other/14"``."""
        return [f.removesuffix(".csv") for f, _ in cls.resources if "anomaly-free" not in f]

    def load_file(self, name: str) -> SkabFile:
        """One labelled file, as upstream reads it."""
        if name not in self.file_names():
            raise ValueError(f"unknown SKAB file {name!r}; choose from {self.file_names()}")
        frame = pd.read_csv(
            self.path(f"{name}.csv"), sep=";", index_col="datetime", parse_dates=True
        )
        labels = frame["anomaly"].to_numpy(dtype=np.int64)
        return SkabFile(name, frame.drop(columns=["anomaly", "changepoint"]), labels)

    def anomaly_free(self) -> pd.DataFrame:
        """The anomaly-free recording: the 8 sensors, in time order (datetime index)."""
        path = self.path("anomaly-free/anomaly-free.csv")
        return pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True)

    def load(self, train: bool = True):  # pragma: no cover - SKAB is read file by file
        raise TypeError("SKAB holds many files: use load_file(name)")


@dataclasses.dataclass
class SkabFile:
    """One experiment: the 8 sensors (datetime index) and the ``anomaly`` labels."""

    name: str
    X: pd.DataFrame
    y: np.ndarray

    @property
    def y_test(self) -> np.ndarray:
        return self.y[TRAIN_ROWS:]


@dataclasses.dataclass
class Counts:
    """A confusion matrix over test rows; adds up over files (as upstream pools them)."""

    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0

    @classmethod
    def of(cls, y: np.ndarray, flags: np.ndarray) -> Counts:
        truth, flags = np.asarray(y) == 1, np.asarray(flags, dtype=bool)
        return cls(
            int((truth & flags).sum()),
            int((~truth & ~flags).sum()),
            int((~truth & flags).sum()),
            int((truth & ~flags).sum()),
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.tp, self.tn, self.fp, self.fn)

    def scores(self) -> tuple[float, float, float]:
        """F1, FAR % and MAR %, as ``chp_score(metric="binary")`` computes them (unrounded).

        Examples
        --------
        >>> Counts(tp=8, tn=6, fp=2, fn=4).scores()
        (0.727..., 25.0, 33.33...)
        """
        f1 = self.tp / (self.tp + (self.fn + self.fp) / 2) if self.tp else 0.0
        far = 100 * self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0
        mar = 100 * self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0
        return f1, far, mar


# ---------------------------------------------------------------------- the two rules
def finite_scores(scores: np.ndarray) -> np.ndarray:
    """Non-finite scores rank above every finite one (a model that blew up noticed something)."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(scores)
    if not bad.any():
        return scores
    top = scores[~bad].max() if (~bad).any() else 0.0
    return np.where(bad, abs(top) * 2 + 1.0, scores)


def vanilla_rule(train_scores: np.ndarray, test_scores: np.ndarray) -> np.ndarray:
    """Vanilla AE's flags: test score above ``quantile_0.99(train scores) * 5/2``.

    Examples
    --------
    >>> vanilla_rule(np.ones(400), np.array([2.0, 2.6])).tolist()
    [False, True]
    """
    limit = np.quantile(finite_scores(train_scores), 0.99) * 5 / 2
    return finite_scores(test_scores) > limit


def _window_means(scores: np.ndarray) -> np.ndarray:
    """Mean score of each window of ``WINDOW`` consecutive rows (``create_sequences``)."""
    if len(scores) < WINDOW:
        return np.zeros(0)
    sums = np.convolve(scores, np.ones(WINDOW), mode="valid")
    return sums / WINDOW


def conv_rule(train_scores: np.ndarray, test_scores: np.ndarray) -> np.ndarray:
    """Conv-AE's flags: row ``d`` when the 59 windows before it (``d-59 .. d-1``) are all above
    ``quantile_0.999(train window scores) * 4/3``; windows do not cross the split.

    Examples
    --------
    >>> test = np.r_[np.zeros(200), np.full(300, 9.0), np.zeros(200)]  # rows 200-499 high
    >>> flags = np.flatnonzero(conv_rule(np.ones(400), test))
    >>> len(flags), int(flags[0]), int(flags[-1])
    (285, 208, 492)
    """
    limit = np.quantile(_window_means(finite_scores(train_scores)), 0.999) * 4 / 3
    anomalous = _window_means(finite_scores(test_scores)) > limit
    flags = np.zeros(len(test_scores), dtype=bool)
    steps = WINDOW - 1
    if len(anomalous) <= steps:
        return flags
    # runs[j] = windows j-58 .. j all anomalous; row d needs windows d-59 .. d-1.
    run = np.convolve(anomalous.astype(np.int64), np.ones(steps, dtype=np.int64), mode="valid")
    complete = run == steps  # complete[k]: windows k .. k+58 all anomalous
    rows = np.arange(steps, len(anomalous) - steps)
    flags[rows] = complete[rows - steps]
    return flags


# ---------------------------------------------------------------------- leaderboard baselines
def t2q_flags(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``T2(scaling=True, using_pca=True)`` with ``window_size=5``: flags, and the statistic
    ``max(T²/UCL_T², Q/UCL_Q)`` (flagged where it exceeds 1) for threshold-free metrics.

    Upstream's quirks are kept: the Q limit sums the eigenvalues ``np.linalg.eig`` returns after
    index k, unsorted, and raises their sum to the powers 1, 2, 3 (so h0 = 1/3).
    """
    import scipy.stats as stats
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    train = train.loc[:, (train != train.iloc[0]).any()]  # constant columns removed
    scaler = StandardScaler().fit(train)
    scaled = scaler.transform(train)
    pca = PCA(n_components=0.85).fit(scaled)
    k, basis = pca.n_components_, pca.components_.T
    inv_cov = np.linalg.inv(np.cov(pca.transform(scaled).T))
    residual = np.eye(len(basis)) - basis @ basis.T
    n, grid = len(scaled), np.linspace(0, 15, 10_000)
    c_f = grid[stats.f.cdf(grid, k, n - k) < 0.999][-1]
    t2_limit = k * (n - 1) * (n + 1) / (n * (n - k)) * c_f
    eigenvalues = np.linalg.eig(np.cov(scaled.T))[0]
    theta = [float(np.real(eigenvalues[k:].sum())) ** i for i in (1, 2, 3)]
    h0 = 1 - 2 * theta[0] * theta[2] / (3 * theta[1] ** 2)
    c_n = grid[stats.norm.cdf(grid) < 0.999][-1]
    q_limit = theta[0] * (
        1 + c_n * h0 * np.sqrt(2 * theta[1]) / theta[0] + theta[1] * h0 * (h0 - 1) / theta[0] ** 2
    ) ** (1 / h0)
    x = scaler.transform(test[train.columns])
    components = pca.transform(x)
    t2 = np.einsum("ij,jk,ik->i", components, inv_cov, components)
    q = np.einsum("ij,jk,ik->i", x, residual, x)
    t2 = pd.Series(t2).rolling(5).median().to_numpy()
    q = pd.Series(q).rolling(5).median().to_numpy()
    flags = (t2 > t2_limit) | (q > q_limit)  # NaN (the first 4 rows) compares False
    statistic = np.nan_to_num(np.maximum(t2 / t2_limit, q / q_limit), nan=0.0)
    return flags, statistic


def iforest_flags(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``IsolationForest(random_state=0, contamination=0.0005)`` on unscaled rows,
    ``predict * -1``, ``rolling(3).median()``, ``fillna(0)``, -1 -> 0: flags, and
    ``-score_samples`` for threshold-free metrics."""
    from sklearn.ensemble import IsolationForest

    jobs = int(os.environ.get("STREAMMEM_THREADS", "1"))
    forest = IsolationForest(random_state=0, contamination=0.0005, n_jobs=jobs).fit(train)
    votes = pd.Series(forest.predict(test) * -1).rolling(3).median().fillna(0).replace(-1, 0)
    return votes.to_numpy() == 1, -forest.score_samples(test)
