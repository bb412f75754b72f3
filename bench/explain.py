"""Which sensor? How often an explanation names the faulty field: ``python -m bench.explain``.

Faults with a known cause, each on one known field, are injected into two streams: the demo's
generated machines (:class:`streammem.demo.SensorStream`, no faults of its own; six sensors
driven by two shared signals, a ``machine`` field) and SKAB's anomaly-free recording (real
sensor data: 8 sensors of a water pump rig, 9,405 readings). A detector with defaults
(``MemAE()``) learns the stream's first half; faults go into the second half, which nothing
learns. Four kinds, on one field and one key (machine) each:

* ``spike`` — one reading jumps ±4 to 8 robust standard deviations of the field;
* ``stuck`` — the field repeats its value for 30 readings of its key;
* ``noise`` — the field gets Gaussian noise of half its robust standard deviation, for as long;
* ``break`` (correlation break) — one reading takes a value that is ordinary for the field on
  its own (within 1.5 robust standard deviations of its median, from the learned half) but at
  least one away from the true one, so only the other fields can show that it is wrong.

The detector reads either the readings (``rows``) or their windows (``window``: 15 readings of
the key, ``std`` and ``last_minus_mean``, as the bundled demo's config), and explains the
reading an alert would be raised on: the faulty reading, or, for the 30-reading faults, the one
of them it scores highest. Its explanation (``explain_many``, window columns folded back to the
readings' fields) ranks the fields; so do two references on the same input vectors and the
same readings:

* ``largest |z|`` — no model: the field whose value (or window feature) lies furthest from its
  median, in robust standard deviations of the learned half;
* ``regression`` — linear leave-one-field-out: each field's columns predicted by least squares
  from the other fields' columns (and the key's one-hot) on the learned half; the field with
  the largest residual in standard deviations of its learned residuals.

Reported per stream, input and kind: top-1 and top-3 accuracy (the faulty field ranked first,
or among the first three) of each, with chance (1 and 3 over the number of fields). Results go
to ``bench/results/explain/`` (``cells.csv``, ``explain.md``, ``explain.png``); ``--quick``
(CI) runs shorter streams and fewer faults into ``bench/cache/explain/quick/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import streammem
from bench.cli import BENCH_DIR, bench_parser, report_dir
from bench.generators import CorrelatedSensors
from bench.skab import SKAB
from streammem.demo import SensorStream
from streammem.explain import fold_frame

__all__ = ["KINDS", "Stream", "correlated_stream", "evaluate", "inject", "main"]

KINDS = ("spike", "stuck", "noise", "break")
METHODS = ("model", "largest |z|", "regression")
FAULT_LENGTH = 30  # readings of its key that a stuck sensor or a noise burst lasts
WINDOW = {"size": 15, "features": ("std", "last_minus_mean")}  # the bundled demo's window
IQR_TO_STD = 1.349


@dataclasses.dataclass(frozen=True)
class Stream:
    """Readings in time order: numeric ``fields`` (where faults go) and an optional ``key``."""

    name: str
    frame: pd.DataFrame
    fields: list[str]
    key: str | None = None
    context: str | None = None  # a categorical field the readings depend on (not a key)
    windows: bool = True  # whether windows over the readings are evaluated too

    @property
    def halves(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The learned first half and the second, where faults go (index from 0 each)."""
        middle = len(self.frame) // 2
        learned, test = self.frame.iloc[:middle], self.frame.iloc[middle:]
        return learned.reset_index(drop=True), test.reset_index(drop=True)


def demo_stream(n_events: int) -> Stream:
    frame = SensorStream(n_events, anomaly_rate=0.0, n_faults=0, seed=0).frame()
    frame = frame.drop(columns=["is_anomaly", "fault"])
    return Stream("demo", frame, [c for c in frame.columns if c != "machine"], "machine")


def correlated_stream(n_events: int, seed: int = 0) -> Stream:
    """:class:`bench.generators.CorrelatedSensors` without faults: 12 sensors, 3 latent
    processes, a machine state that changes how they mix (rows only: one machine, no key)."""
    stream = CorrelatedSensors(
        n_events=n_events, state_dwell=800.0, point_rate=0.0, n_faults=0, seed=seed
    )
    return Stream("correlated", stream.records(), stream.fields, context="state", windows=False)


def skab_stream(n_rows: int | None, root: str | None) -> Stream:
    frame = SKAB(root).anomaly_free().reset_index(drop=True).iloc[:n_rows]
    return Stream("skab", frame, list(frame.columns))


# ---------------------------------------------------------------------------------- faults
@dataclasses.dataclass(frozen=True)
class Episode:
    """One fault: its field and the rows of the second half it touches."""

    field: str
    rows: np.ndarray


def robust_spread(values: pd.Series) -> float:
    """Interquartile range / 1.349 (a normal's standard deviation); the std if that is 0."""
    low, high = np.quantile(values, [0.25, 0.75])
    return float((high - low) / IQR_TO_STD) or float(values.std())


def plan(stream: Stream, test: pd.DataFrame, kind: str, n: int, seed: int) -> list[Episode]:
    """Up to ``n`` faults spread evenly over ``test``, far enough apart that a window has
    forgotten one before the next starts; fields taken in turn, in a seeded order."""
    keys = test[stream.key].to_numpy() if stream.key else np.zeros(len(test))
    n_keys = len(np.unique(keys))
    length = 1 if kind in ("spike", "break") else FAULT_LENGTH
    span = (length + WINDOW["size"]) * n_keys + 10
    n = min(n, (len(test) - span) // span)
    rng = np.random.default_rng(seed)
    fields = [stream.fields[i % len(stream.fields)] for i in rng.permutation(n)]
    episodes = []
    for field, start in zip(fields, np.linspace(0, len(test) - span, n).astype(int), strict=True):
        same_key = np.flatnonzero(keys == keys[start])
        episodes.append(Episode(field, same_key[same_key >= start][:length]))
    return episodes


def inject(
    test: pd.DataFrame, learned: pd.DataFrame, kind: str, episodes: list[Episode], seed: int
) -> pd.DataFrame:
    """A copy of ``test`` with the faults of ``episodes``, of one kind (see the module)."""
    rng = np.random.default_rng(seed)
    faulty = test.copy()
    for episode in episodes:
        field, rows = episode.field, episode.rows
        spread = robust_spread(learned[field])
        column = faulty.columns.get_loc(field)
        if kind == "spike":
            faulty.iloc[rows, column] += rng.choice([-1, 1]) * rng.uniform(4, 8) * spread
        elif kind == "stuck":
            faulty.iloc[rows, column] = faulty.iloc[rows[0], column]
        elif kind == "noise":
            faulty.iloc[rows, column] += rng.normal(0, spread / 2, len(rows))
        else:
            faulty.iloc[rows, column] = plausible_but_wrong(
                learned[field], test.iat[rows[0], column], rng
            )
    return faulty


def plausible_but_wrong(values: pd.Series, truth: float, rng: np.random.Generator) -> float:
    """A learned value within 1.5 robust standard deviations of the median, at least one away
    from ``truth`` (the furthest such value where none is that far)."""
    median, spread = float(values.median()), robust_spread(values)
    ordinary = values[(values - median).abs() <= 1.5 * spread].to_numpy()
    far = ordinary[np.abs(ordinary - truth) >= spread]
    if len(far):
        return float(rng.choice(far))
    return float(ordinary[np.argmax(np.abs(ordinary - truth))])


# ---------------------------------------------------------------------------------- inputs
class Reader:
    """What the detector reads: the readings, or their windows (state of the learned half)."""

    def __init__(self, stream: Stream, windowed: bool) -> None:
        self.window = streammem.TimeWindow(**WINDOW, key=stream.key) if windowed else None

    def learn(self, learned: pd.DataFrame) -> pd.DataFrame:
        """The learned half's input vectors; the window takes the half in."""
        if self.window is None:
            return learned
        vectors = self.window.transform_many(learned)
        self.window.learn_many(learned)
        return vectors

    def read(self, test: pd.DataFrame) -> pd.DataFrame:
        """The second half's input vectors (pure: each window holds the readings before it)."""
        return test if self.window is None else self.window.transform_many(test)

    def owners(self, test: pd.DataFrame) -> dict[str, str]:
        """The reading field of each input column (every column its own without a window)."""
        if self.window is None:
            return {c: c for c in test.columns}
        return self.window.column_fields(test)


Ranker = Callable[[pd.DataFrame], pd.DataFrame]


def z_ranker(train: pd.DataFrame, owners: dict[str, str]) -> Ranker:
    """Largest |z| of a field's columns, robust centre and spread of the learned half."""
    columns = list(owners)
    centre = train[columns].median()
    spread = pd.Series({c: robust_spread(train[c]) for c in columns})

    def rank(vectors: pd.DataFrame) -> pd.DataFrame:
        z = ((vectors[columns] - centre) / spread).abs()
        return z.T.groupby(pd.Series(owners)).max().T

    return rank


def regression_ranker(train: pd.DataFrame, owners: dict[str, str], key: str | None) -> Ranker:
    """Largest standardised residual of a field's columns, each column predicted by least
    squares from the other fields' columns and the key's one-hot, fitted on the learned half."""
    design = _design(train, key)
    fits = {}
    for column, field in owners.items():
        others = [c for c, f in owners.items() if f != field]
        x = np.column_stack([train[others].to_numpy(), design])
        coef, *_ = np.linalg.lstsq(x, train[column].to_numpy(), rcond=None)
        residual_std = float(np.std(train[column].to_numpy() - x @ coef)) or 1.0
        fits[column] = (others, coef, residual_std)

    def rank(vectors: pd.DataFrame) -> pd.DataFrame:
        extra = _design(vectors, key, levels=train[key].unique() if key else None)
        residuals = {
            column: np.abs(vectors[column] - np.column_stack([vectors[others], extra]) @ coef) / std
            for column, (others, coef, std) in fits.items()
        }
        return pd.DataFrame(residuals, index=vectors.index).T.groupby(pd.Series(owners)).max().T

    return rank


def _design(frame: pd.DataFrame, key: str | None, levels: Sequence | None = None) -> np.ndarray:
    """An intercept, and the key's one-hot (one level left out) when there is a key."""
    ones = np.ones((len(frame), 1))
    if key is None:
        return ones
    levels = list(levels) if levels is not None else list(frame[key].unique())
    return np.column_stack([ones, *[(frame[key] == level).to_numpy() for level in levels[1:]]])


# ---------------------------------------------------------------------------------- a cell
def accuracy(rankings: pd.DataFrame, truth: list[str]) -> tuple[float, float]:
    """Top-1 and top-3 accuracy: the true field ranked first, or among the first three."""
    places = [
        list(row.sort_values(ascending=False, kind="stable").index).index(field)
        if field in row.index
        else len(row)
        for (_, row), field in zip(rankings.iterrows(), truth, strict=True)
    ]
    return float(np.mean(np.array(places) < 1)), float(np.mean(np.array(places) < 3))


def evaluate(
    stream: Stream, windowed: bool, n_faults: int, model: str = "MemAE", seed: int = 0
) -> list[dict]:
    """Learn the first half, inject each kind into the second, and score the three methods."""
    learned, test = stream.halves
    reader = Reader(stream, windowed)
    detector = getattr(streammem, model)(seed=seed)
    train = reader.learn(learned)
    detector.learn_many(train)
    owners = reader.owners(test)
    numeric = {c: f for c, f in owners.items() if f in stream.fields}
    rankers = {
        "model": lambda vectors: fold_frame(detector.explain_many(vectors), owners),
        "largest |z|": z_ranker(train, numeric),
        "regression": regression_ranker(train, numeric, stream.key or stream.context),
    }
    cells = []
    for k, kind in enumerate(KINDS):
        episodes = plan(stream, test, kind, n_faults, seed + k)
        vectors = reader.read(inject(test, learned, kind, episodes, seed + k))
        rows = [_alert_row(detector, vectors, episode.rows) for episode in episodes]
        truth = [episode.field for episode in episodes]
        for method, rank in rankers.items():
            top1, top3 = accuracy(rank(vectors.iloc[rows]), truth)
            cells.append(
                {
                    "stream": stream.name,
                    "input": "window" if windowed else "rows",
                    "kind": kind,
                    "method": model if method == "model" else method,
                    "faults": len(episodes),
                    "fields": len(stream.fields),
                    "top1": top1,
                    "top3": top3,
                }
            )
    return cells


def _alert_row(detector: Any, vectors: pd.DataFrame, rows: np.ndarray) -> int:
    """The fault's reading an alert would be raised on: the one the detector scores highest."""
    return int(rows[int(np.argmax(detector.score_many(vectors.iloc[rows])))])


# ---------------------------------------------------------------------------------- report
BREAK_TARGETS = {("correlated", "rows"): 0.85}


def targets(cells: pd.DataFrame, model: str) -> list[str]:
    """The issues' quality targets, met or missed, per stream and input (correlation breaks:
    0.85 on the correlated stream's rows, issue 28; 0.5 elsewhere, the earlier target)."""
    lines = []
    for (stream, kind_input), group in cells.groupby(["stream", "input"], sort=False):
        top1 = group.pivot(index="kind", columns="method", values="top1")
        ours, z = top1[model], top1["largest |z|"]
        behind = [k for k in z.index if z[k] < 0.9 and ours[k] <= z[k]]
        breaks = BREAK_TARGETS.get((stream, kind_input), 0.5)
        checks = [
            (f"spikes top-1 {ours['spike']:.2f} >= 0.95", ours["spike"] >= 0.95),
            (
                f"correlation breaks top-1 {ours['break']:.2f} >= {breaks:g}",
                ours["break"] >= breaks,
            ),
            (
                "ahead of largest |z| on every kind where it is below 0.9"
                + (f" (not on {', '.join(behind)})" if behind else ""),
                not behind,
            ),
        ]
        for text, met in checks:
            verdict = "met" if met else "**missed**"
            lines.append(f"| {stream} | {kind_input} | {_md(text)} | {verdict} |")
    return lines


def write_report(cells: pd.DataFrame, out: Path, command: str, model: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    cells.to_csv(out / "cells.csv", index=False, float_format="%.4f")
    lines = [
        "# Which sensor? Top-field accuracy of the explanations",
        "",
        f"Made by `{command}` (see `bench/explain.py` for the protocol). Accuracy: the share of",
        "injected faults whose field the method ranks first (top-1) or among its first three",
        "(top-3); chance is 1 (3) over the number of fields.",
        "",
    ]
    for (stream, kind_input), group in cells.groupby(["stream", "input"], sort=False):
        fields = int(group["fields"].iloc[0])
        lines += [
            f"## {stream}, {kind_input} ({fields} fields: chance {1 / fields:.2f} / "
            f"{min(3 / fields, 1):.2f})",
            "",
            "| kind | faults | "
            + " | ".join(f"{_md(m)} top-1 / top-3" for m in _methods(model))
            + " |",
            "|---|---:|" + "---:|" * len(METHODS),
        ]
        for kind in KINDS:
            rows = group[group["kind"] == kind].set_index("method")
            values = [
                f"{rows.at[m, 'top1']:.2f} / {rows.at[m, 'top3']:.2f}" for m in _methods(model)
            ]
            lines.append(f"| {kind} | {int(rows['faults'].iloc[0])} | " + " | ".join(values) + " |")
        lines.append("")
    lines += ["## Targets", "", "| stream | input | target | |", "|---|---|---|---|"]
    lines += [*targets(cells, model), ""]
    (out / "explain.md").write_text("\n".join(lines))
    return [out / "cells.csv", out / "explain.md", draw(cells, out / "explain.png", model)]


def _methods(model: str) -> list[str]:
    return [model, *METHODS[1:]]


def _md(text: str) -> str:
    """Text for a Markdown table cell (a bare ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def draw(cells: pd.DataFrame, path: Path, model: str) -> Path:
    """One panel per stream and input: top-1 bars per kind and method, top-3 as outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = list(cells.groupby(["stream", "input"], sort=False))
    rows = -(-len(panels) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 2.9 * rows + 0.6), sharey=True, squeeze=False)
    colours = dict(zip(_methods(model), ("tab:red", "tab:gray", "tab:blue"), strict=True))
    x = np.arange(len(KINDS))
    for ax, ((stream, kind_input), group) in zip(axes.flat, panels, strict=False):
        for i, method in enumerate(_methods(model)):
            shown = group[group["method"] == method].set_index("kind").loc[list(KINDS)]
            at = x + (i - 1) * 0.27
            ax.bar(at, shown["top3"], 0.25, color="none", edgecolor=colours[method], lw=1)
            ax.bar(at, shown["top1"], 0.25, color=colours[method], label=method)
        fields = int(group["fields"].iloc[0])
        ax.axhline(1 / fields, color="black", ls=":", lw=1)
        ax.set_xticks(x, KINDS)
        ax.set_title(f"{stream}, {kind_input} ({fields} fields)", fontsize=9)
        ax.set_ylim(0, 1.02)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles = [*axes.flat[0].get_legend_handles_labels()[0], Line2D([], [], color="black", ls=":")]
    labels = [f"{m}: top-1 (filled), top-3 (outline)" for m in _methods(model)] + ["chance, top-1"]
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Which field caused the fault? How often each method names it", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(__name__, __doc__, quick="under a minute", data="skab/", out="explain")
    parser.add_argument("--faults", type=int, help="faults per kind (default 60; quick 12)")
    parser.add_argument("--model", default="MemAE", help="detector class, with defaults")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    n_faults = args.faults or (12 if quick else 60)
    streams = [
        correlated_stream(6_000 if quick else 20_000),
        demo_stream(4_000 if quick else 20_000),
        skab_stream(3_000 if quick else None, args.data_root),
    ]
    cells = []
    for stream in streams:
        for windowed in (False, True) if stream.windows else (False,):
            print(f"{stream.name}, {'window' if windowed else 'rows'}", flush=True)
            cells += evaluate(stream, windowed, n_faults, args.model)
    frame = pd.DataFrame(cells)
    out = report_dir(args, "explain", BENCH_DIR / "cache" / "explain" / "quick")
    command = "python -m bench.explain " + shlex.join(argv if argv is not None else sys.argv[1:])
    written = write_report(frame, out, command.strip(), args.model)
    print(out.joinpath("explain.md").read_text())
    print(f"reports: {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
