"""Throughput: streammem's per-event and batch paths against River's HalfSpaceTrees, same events.

Run ``python -m bench.throughput`` (``--events``, ``--models``, ``--out``). Events are
KDDCUP99-shaped: 38 numeric fields and 3 categorical ones (``protocol_type``, ``service``,
``flag``), generated with a fixed seed. Each contender sees the same events, scores each one
before learning it (progressive validation order), and is timed end to end:

* River: ``MinMaxScaler() | HalfSpaceTrees()`` with defaults; ``MinMaxScaler`` only takes
  numbers, so the three string fields go through River's ``OneHotEncoder`` beside it;
* streammem per event: ``score_one`` then ``learn_one``;
* streammem batches: ``score_many`` then ``learn_many`` on DataFrames of ``--batch`` rows,
  built before the clock starts (they are the input format of that path).

Each contender first sees ``--warmup`` other events untimed (imports, first allocations, the
first model build), so the figures are the steady state of a long-running stream. Ratios are
events/s over River's events/s measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import numbers
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from river import anomaly, compose, preprocessing

import streammem

PROTOCOLS = ["tcp", "udp", "icmp"]
SERVICES = [f"svc{i}" for i in range(66)]
FLAGS = ["SF", "S0", "REJ", "RSTR", "SH", "RSTO", "S1", "RSTOS0", "S3", "S2", "OTH"]
N_NUMERIC = 38


def kdd_shaped_events(n: int, seed: int = 0) -> list[dict]:
    """``n`` events with 41 fields: heavy-tailed counts, rates in [0, 1], 3 categories."""
    rng = np.random.default_rng(seed)
    counts = rng.lognormal(mean=3.0, sigma=2.0, size=(n, N_NUMERIC // 2))
    rates = rng.beta(0.5, 2.0, size=(n, N_NUMERIC - N_NUMERIC // 2))
    numeric = np.hstack([counts, rates])
    proto = rng.choice(PROTOCOLS, size=n, p=[0.6, 0.3, 0.1])
    service = rng.choice(SERVICES, size=n)
    flag = rng.choice(FLAGS, size=n)
    names = [f"f{i:02d}" for i in range(N_NUMERIC)]
    events = []
    for i in range(n):
        event = dict(zip(names, numeric[i].tolist(), strict=True))
        event.update(protocol_type=str(proto[i]), service=str(service[i]), flag=str(flag[i]))
        events.append(event)
    return events


def river_baseline():
    numbers_scaled = compose.SelectType(numbers.Number) | preprocessing.MinMaxScaler()
    strings_encoded = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return (numbers_scaled + strings_encoded) | anomaly.HalfSpaceTrees()


def per_event(model, events: list[dict]) -> float:
    start = time.perf_counter()
    for x in events:
        model.score_one(x)
        model.learn_one(x)
    return time.perf_counter() - start


def batched(model, batches: list[pd.DataFrame]) -> float:
    start = time.perf_counter()
    for frame in batches:
        model.score_many(frame)
        model.learn_many(frame)
    return time.perf_counter() - start


def _frames(events: list[dict], batch: int) -> list[pd.DataFrame]:
    return [pd.DataFrame(events[i : i + batch]) for i in range(0, len(events), batch)]


def run(n_events: int, batch: int, warmup: int, model_names: list[str]) -> dict:
    warm_events = kdd_shaped_events(warmup, seed=1)
    events = kdd_shaped_events(n_events)
    warm_frames, frames = _frames(warm_events, batch), _frames(events, batch)
    rows: list[dict] = []

    def record(name: str, path: str, seconds: float) -> None:
        rows.append({"model": name, "path": path, "events_per_s": n_events / seconds})
        print(f"  {name:<32} {path:<10} {n_events / seconds:>12,.0f} events/s", flush=True)

    def warm(model, by_event: bool):
        per_event(model, warm_events) if by_event else batched(model, warm_frames)
        return model

    print(f"{n_events:,} KDDCUP-shaped events (41 fields), batches of {batch}, {warmup:,} warm-up")
    river = warm(river_baseline(), by_event=True)
    record("river MinMaxScaler|HST", "per-event", per_event(river, events))
    for name in model_names:
        make: Callable[..., streammem.MemoryDetector] = getattr(streammem, name)
        det = warm(make(device="cpu"), by_event=True)
        record(f"streammem.{name}", "per-event", per_event(det, events))
        det = warm(make(device="cpu"), by_event=False)
        record(f"streammem.{name}", "many", batched(det, frames))
    baseline = rows[0]["events_per_s"]
    for row in rows:
        row["ratio_vs_river"] = row["events_per_s"] / baseline
    return {
        "command": "python -m bench.throughput " + " ".join(sys.argv[1:]),
        "events": n_events,
        "batch": batch,
        "warmup": warmup,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads available",
        "torch": torch.__version__,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--models", default="MemAE", help="comma-separated detector names")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    result = run(args.events, args.batch, args.warmup, args.models.split(","))
    print("\nratio vs River (same events, same run):")
    for row in result["rows"][1:]:
        print(f"  {row['model']:<32} {row['path']:<10} {row['ratio_vs_river']:>6.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
