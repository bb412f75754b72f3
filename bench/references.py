"""Streaming references every quality table carries beside the floor.

:class:`StreamingPCA` is the streaming linear reference: a PCA refitted every ``refit_every``
events on the last ``window`` events, on standardised inputs (each column's mean and standard
deviation over that window; categorical fields one-hot encoded), keeping the components that
explain ``variance`` of the window's variance. An event scores its mean squared residual off the
fitted subspace (the Q statistic, in standard deviations): what a linear model of the recent
stream cannot explain. It follows the protocol of the streammem detectors (``score_many`` then
``learn_many`` on each batch), scores 0 until its first fit, and never sees a label; like them
it measures its prequential fit (``fit_r2_``: R² by field of the records before it learns them,
in its standardised units), so the two learning curves can be read side by side.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

from streammem.learning.fit import FitTracker

__all__ = ["StreamingPCA"]

_STD_FLOOR = 1e-9


class StreamingPCA:
    """PCA refitted on a sliding window; a score is the mean squared standardised residual.

    Parameters
    ----------
    window
        Events the PCA is fitted on (the most recent ones).
    refit_every
        Events between two fits.
    variance
        Fraction of the window's (standardised) variance the kept components explain.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(3000, 2))
    >>> X = pd.DataFrame(latent @ rng.normal(size=(2, 6)) + 0.01 * rng.normal(size=(3000, 6)))
    >>> pca = StreamingPCA(window=1000, refit_every=256)
    >>> pca.learn_many(X.iloc[:2000])
    >>> pca.n_components_
    2
    >>> broken = X.iloc[2000:2010].copy()
    >>> broken.iloc[:, 0] += 3.0
    >>> bool((pca.score_many(broken) > 10 * pca.score_many(X.iloc[2000:2010])).all())
    True
    """

    def __init__(self, window: int = 4096, refit_every: int = 256, variance: float = 0.99):
        self.window = window
        self.refit_every = refit_every
        self.variance = variance

    def _matrix(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(X, np.ndarray):
            return X.astype(np.float64)
        if "columns_" not in self.__dict__:
            self.categorical_ = {
                c: sorted(X[c].astype(str).unique())
                for c in X.columns
                if not pd.api.types.is_numeric_dtype(X[c])
            }
            self.numeric_ = [c for c in X.columns if c not in self.categorical_]
            self.columns_ = True
            self.owners_ = [*self.numeric_] + [
                c for c, values in self.categorical_.items() for _ in values
            ]
        blocks = [X[self.numeric_].to_numpy(np.float64)]
        for column, values in self.categorical_.items():
            blocks.append((X[column].astype(str).to_numpy()[:, None] == np.array(values)) * 1.0)
        return np.hstack(blocks)

    def score_many(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Mean squared residual off the fitted subspace, per row (0 before the first fit)."""
        matrix = self._matrix(X)
        if "components_" not in self.__dict__:
            return np.zeros(len(matrix))
        return self.residuals(matrix).mean(axis=1)

    def residuals(self, matrix: np.ndarray) -> np.ndarray:
        """Each column's squared standardised residual, per row."""
        z = (matrix - self.mean_) / self.std_
        projected = (z @ self.components_.T) @ self.components_
        return np.square(z - projected)

    @property
    def fit_r2_(self) -> dict[Hashable, float]:
        """R² by field of the records before they were learned (empty before the first fit)."""
        tracker = self.__dict__.get("fit_")
        if tracker is None:
            return {}
        owners = self.__dict__.get("owners_") or list(range(tracker.width))
        return tracker.r2_(owners)

    def learn_many(self, X: pd.DataFrame | np.ndarray) -> None:
        matrix = self._matrix(X)
        if "components_" in self.__dict__:
            z = np.nan_to_num((matrix - self.mean_) / self.std_)
            if "fit_" not in self.__dict__:
                self.fit_ = FitTracker(matrix.shape[1])
            self.fit_.update(z, (z @ self.components_.T) @ self.components_)
        history = self.__dict__.get("history_", np.zeros((0, matrix.shape[1])))
        self.history_ = np.vstack([history, matrix])[-self.window :]
        self.since_fit_ = self.__dict__.get("since_fit_", self.refit_every) + len(matrix)
        if self.since_fit_ >= self.refit_every and len(self.history_) >= 2:
            self._fit()

    def _fit(self) -> None:
        rows = self.history_
        self.mean_ = rows.mean(axis=0)
        std = rows.std(axis=0)
        self.std_ = np.where(std > _STD_FLOOR, std, np.inf)  # a constant column adds nothing
        z = (rows - self.mean_) / self.std_
        _, singular, vt = np.linalg.svd(z, full_matrices=False)
        explained = np.cumsum(singular**2) / max(float(np.sum(singular**2)), _STD_FLOOR)
        self.n_components_ = int(np.searchsorted(explained, self.variance) + 1)
        self.components_ = vt[: self.n_components_]
        self.since_fit_ = 0
