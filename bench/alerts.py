"""The alerts view: what the default ``AlertFilter`` flags, per stream: ``python -m bench.alerts``.

Users act on alerts, not on AUROC, so this bench judges the alert flags themselves, with the
defaults a user gets (``streammem.AlertFilter(streammem.MemAE())``: conformal p-values, alpha
0.01, flagged records not learned), beside the no-model floor (each record's mean squared
z-score under the running mean and std of the records learned before it) run through the same
calibrator. No label chooses anything; labels only count.

Two tables:

* **feeding**: the same streams fed one record at a time (``score_one``, ``classify``,
  ``learn_one``) and through ``process_many`` in chunks of 1, 64, 256, 2,000 and the whole
  stream: alert counts (and their ratio to one at a time), false-alarm rate on normal events and
  recall, after each stream's warm-up. Streams: the bundled demo's sensor stream, the 34 SKAB
  files (raw readings) and ``bench.stream``'s four ``--quick`` sets.
* **quality**: per stream, false-alarm rate on normal events, recall and F1 of MemAE and of the
  floor: the 36 ``bench.stream`` streams (its protocol order and warm-up), the 34 SKAB files
  read through the README's sensor window (``TimeWindow(size=60)``, the floor on the same
  window vectors) and the demo.

Examples
--------
The CI smoke run (the demo cut to 4,000 events, four SKAB files, the four quick sets; feedings
one at a time and whole)::

    python -m bench.alerts --quick

Everything (bench/results/alerts/)::

    python -m bench.alerts
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import streammem
from bench.cli import BENCH_DIR, bench_parser, report_dir
from bench.sensors import RunningZ
from bench.skab import SKAB
from bench.stream import QUICK_DATASETS, all_streams, load_stream, warmup_events
from streammem.demo import SensorStream
from streammem.service.agreement import LabelAgreement

__all__ = ["FEEDINGS", "Stream", "alert_counts", "feed", "main"]

#: How a stream is handed over: one record at a time, or process_many in chunks of this size
#: (0: the whole stream in one call).
FEEDINGS: dict[str, int | None] = {
    "one at a time": None,
    "chunks of 1": 1,
    "chunks of 64": 64,
    "chunks of 256": 256,
    "chunks of 2000": 2000,
    "whole stream": 0,
}
QUICK_FEEDINGS = ("one at a time", "whole stream")
README_WINDOW = {"size": 60}  # the README's sensor config: mean, std, slope, last-minus-mean


@dataclasses.dataclass
class Stream:
    """A labelled stream in time order: the records as a user's feed holds them."""

    group: str
    name: str
    frame: pd.DataFrame
    y: np.ndarray
    warmup: int
    window: dict | None = None  # a TimeWindow in front of the filter
    floor_input: pd.DataFrame | None = None  # what the floor reads, where not the numbers

    def numeric(self) -> pd.DataFrame:
        """What the floor reads: the numeric fields (a window's vectors, if any)."""
        if self.floor_input is not None:
            return self.floor_input
        frame = self.frame
        if self.window is not None:
            frame = streammem.TimeWindow(**self.window).transform_many(frame)
        return frame.select_dtypes("number")


def new_model(stream: Stream, floor: bool = False) -> streammem.AlertFilter:
    """The default alert filter around MemAE, or around the floor; windowed when asked."""
    detector = RunningZ() if floor else streammem.MemAE()
    model = streammem.AlertFilter(detector)
    if stream.window is not None and not floor:
        return streammem.TimeWindow(**stream.window) | model
    return model


def feed(model: streammem.AlertFilter, frame: pd.DataFrame, chunk: int | None) -> np.ndarray:
    """The alert flags of a stream fed as ``chunk`` says (see :data:`FEEDINGS`)."""
    if chunk is None:
        flags = []
        for x in frame.to_dict("records"):
            flags.append(model.classify(model.score_one(x)))
            model.learn_one(x)
        return np.array(flags, dtype=bool)
    size = chunk or max(len(frame), 1)
    parts = [
        model.process_many(frame.iloc[i : i + size]).alerts for i in range(0, len(frame), size)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def alert_counts(flags: np.ndarray, y: np.ndarray, warmup: int) -> dict[str, float]:
    """Alerts, false alarms on normal events and caught anomalies, after the warm-up.

    Examples
    --------
    >>> alert_counts(np.array([1, 1, 0, 1, 0], bool), np.array([0, 1, 1, 0, 0], bool), 1)
    {'events': 4, 'alerts': 2, 'normal': 2, 'false_alarms': 1, 'anomalies': 2, 'caught': 1}
    """
    judged = np.arange(len(flags)) >= warmup
    agreement = LabelAgreement.of(flags, y.astype(bool), judged)
    return {
        "events": int(judged.sum()),
        "alerts": int(flags[judged].sum()),
        **dataclasses.asdict(agreement),
    }


def rates(counts: dict[str, float]) -> dict[str, float]:
    """False-alarm rate, recall, precision and F1 of summed counts (see ``LabelAgreement``)."""
    fields = [f.name for f in dataclasses.fields(LabelAgreement)]
    agreement = LabelAgreement(**{name: int(counts[name]) for name in fields})
    return {
        "far": agreement.false_alarm_rate,
        "recall": agreement.recall,
        "precision": agreement.precision,
        "f1": agreement.f1,
    }


# ---------------------------------------------------------------------- streams
def demo_stream(n_events: int) -> Stream:
    frame = SensorStream(n_events=n_events).frame()
    y = frame.pop("is_anomaly").to_numpy()
    return Stream("demo", "demo", frame.drop(columns="fault"), y, warmup_events(n_events))


def skab_streams(files: Sequence[str], root: str | None, window: dict | None) -> Iterator[Stream]:
    skab = SKAB(root)
    for name in files:
        file = skab.load_file(name)
        frame = file.X.reset_index(drop=True)
        # SKAB's files are short (about 1,100 rows, a third of them faulty): no warm-up is cut,
        # so the first alerts a calibrator allows count.
        yield Stream("skab", name, frame, file.y, 0, window)


def adbench_streams(names: Sequence[str], root: str | None) -> Iterator[Stream]:
    for name in names:
        data = load_stream(name, root)
        numbers = pd.DataFrame(data.X, columns=[f"f{i}" for i in range(data.X.shape[1])])
        # kddcup: MemAE reads the raw records, the floor their one-hot numbers
        frame = data.frame if data.frame is not None else numbers
        yield Stream("bench.stream", name, frame, data.y, warmup_events(len(data)), None, numbers)


# ---------------------------------------------------------------------- tables
def feeding_rows(streams: Sequence[Stream], feedings: Sequence[str]) -> list[dict]:
    rows = []
    for stream in tqdm(streams, desc="feeding", unit="stream"):
        for feeding in feedings:
            started = time.perf_counter()
            flags = feed(new_model(stream), stream.frame, FEEDINGS[feeding])
            counts = alert_counts(flags, stream.y, stream.warmup)
            rows.append(
                {
                    "group": stream.group,
                    "stream": stream.name,
                    "feeding": feeding,
                    **counts,
                    "total_alerts": int(flags.sum()),
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
    return rows


def quality_rows(streams: Sequence[Stream]) -> list[dict]:
    rows = []
    for stream in tqdm(streams, desc="quality", unit="stream"):
        contenders: dict[str, Callable[[], np.ndarray]] = {
            "MemAE": lambda s=stream: new_model(s).process_many(s.frame).alerts,
            "floor": lambda s=stream: new_model(s, floor=True).process_many(s.numeric()).alerts,
        }
        for contender, flags in contenders.items():
            counts = alert_counts(flags(), stream.y, stream.warmup)
            rows.append(
                {"group": stream.group, "stream": stream.name, "contender": contender, **counts}
            )
    return rows


def summarise_feeding(rows: pd.DataFrame) -> pd.DataFrame:
    """Per group and feeding: summed counts, rates and alerts against one at a time."""
    sums = rows.groupby(["group", "feeding"], sort=False)[
        ["events", "alerts", "normal", "false_alarms", "anomalies", "caught"]
    ].sum()
    table = pd.concat([sums, sums.apply(lambda r: pd.Series(rates(r)), axis=1)], axis=1)
    baseline = table.xs("one at a time", level="feeding")["alerts"]
    table["vs one at a time"] = (
        table["alerts"] / baseline.reindex(table.index.get_level_values("group")).to_numpy()
    )
    worst = rows.merge(
        rows[rows.feeding == "one at a time"][["stream", "alerts"]],
        on="stream",
        suffixes=("", "_1"),
    )
    worst["differs"] = worst["alerts"] != worst["alerts_1"]
    table["streams whose count differs"] = worst.groupby(["group", "feeding"], sort=False)[
        "differs"
    ].sum()
    return table.reset_index()


def summarise_quality(rows: pd.DataFrame) -> pd.DataFrame:
    """Per stream and contender: rates; plus each group's pooled rates."""
    per_stream = rows.assign(**rows.apply(lambda r: pd.Series(rates(r)), axis=1))
    pooled = rows.groupby(["group", "contender"], sort=False)[
        ["events", "alerts", "normal", "false_alarms", "anomalies", "caught"]
    ].sum()
    pooled = pd.concat([pooled, pooled.apply(lambda r: pd.Series(rates(r)), axis=1)], axis=1)
    pooled = pooled.reset_index().assign(stream="(pooled)")
    return pd.concat([pooled, per_stream], ignore_index=True)


def write_report(feeding: pd.DataFrame, quality: pd.DataFrame, out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    feeding.to_csv(out / "feeding.csv", index=False)
    quality.to_csv(out / "quality.csv", index=False)
    feeding_table = summarise_feeding(feeding)
    quality_table = summarise_quality(quality)
    pooled = quality_table[quality_table.stream == "(pooled)"]
    wide = quality_table[quality_table.stream != "(pooled)"].pivot_table(
        index=["group", "stream"], columns="contender", values=["far", "recall", "f1"]
    )
    better = (wide[("recall", "MemAE")] > wide[("recall", "floor")]).groupby("group").sum()
    lines = [
        "# Alerts of the default AlertFilter (alpha 0.01), by feeding and per stream",
        "",
        f"Made by `{command}`. Counts after each stream's warm-up; FAR is the false-alarm rate "
        "on normal events (the target band is [0.003, 0.02], 0.3 to 2 alpha).",
        "",
        "## Feeding: the same streams, handed over differently",
        "",
        _markdown(feeding_table),
        "",
        "## Quality: MemAE and the no-model floor through the same calibrator",
        "",
        "Pooled over each group's streams:",
        "",
        _markdown(pooled.drop(columns="stream")),
        "",
        "Streams where MemAE's recall is above the floor's: "
        + ", ".join(
            f"{group} {int(n)} of {int((wide.index.get_level_values(0) == group).sum())}"
            for group, n in better.items()
        )
        + ".",
        "",
        "Per stream:",
        "",
        _markdown(wide.round(4).reset_index()),
    ]
    path = out / "alerts.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _markdown(frame: pd.DataFrame) -> str:
    frame = frame.copy()
    frame.columns = [
        " ".join(map(str, c)).strip() if isinstance(c, tuple) else c for c in frame.columns
    ]
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = [
        "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = bench_parser(
        __name__,
        __doc__,
        quick="about a minute",
        data="adbench/, kddcup99/ and skab/",
        out="alerts",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.data_root
    skab_files = SKAB.file_names()[:4] if args.quick else SKAB.file_names()
    demo = demo_stream(4_000 if args.quick else 20_000)
    quick_sets = list(adbench_streams(QUICK_DATASETS, root))
    feeding_streams = [demo, *skab_streams(skab_files, root, None), *quick_sets]
    feedings = QUICK_FEEDINGS if args.quick else tuple(FEEDINGS)
    feeding = pd.DataFrame(feeding_rows(feeding_streams, feedings))
    adbench = quick_sets if args.quick else list(adbench_streams(all_streams(), root))
    quality_streams = [demo, *skab_streams(skab_files, root, README_WINDOW), *adbench]
    quality = pd.DataFrame(quality_rows(quality_streams))
    out = report_dir(args, "alerts", BENCH_DIR / "cache" / "alerts")
    command = "python -m bench.alerts" + (" --quick" if args.quick else "")
    print(f"report: {write_report(feeding, quality, out, command)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
