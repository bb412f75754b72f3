"""Throughput on real KDDCUP99 events: streammem against River's HalfSpaceTrees, same events.

``python -m bench.throughput`` times, on the KDDCUP99 10 % set's raw records in a seeded random
order (38 numbers and the three string fields ``protocol_type``, ``service``, ``flag``):

* River: ``MinMaxScaler() | HalfSpaceTrees()`` with defaults, the numeric fields chosen by name
  with ``compose.Select`` (the string fields go through River's ``OneHotEncoder`` beside the
  scaler, which only takes numbers), event by event;
* streammem per event: ``score_one`` then ``learn_one``;
* streammem batches: ``encode_many`` then ``score_many`` and ``learn_many`` on DataFrames of
  ``--batch`` rows (built before the clock starts; they are that path's input format).

Every contender runs in its own process (so its peak RSS is its own), first learns
``--warmup`` events untimed (3,000 by default: imports, the first model build and the young
model's extra training are behind it), then is timed on the next ``--events`` events, each
scored before it is learned. Reported: events/s (wall), events per CPU-second (per core),
peak RSS, and the ratio to River's events/s measured in the same run. ``--load`` repeats every
measurement with a CPU-bound competitor process running, and reports quiet and loaded figures
side by side.

``--explain`` adds, per detector, what explaining costs: after the same warm-up, ``score_many``
and ``explain_many`` in turn on each of the same ``--batch``-row DataFrames of the timed events
(both pure), reported as the ratio of their times, measured in the same process and run.

``--baseline REF`` adds each ``--models`` detector as it was at the git revision ``REF``
(checked out into a temporary worktree and timed by that tree's own worker, on the same cached
events, in the same run): rows ``MemAE@REF``, and each row's ratio to its baseline's events/s.

``--series`` adds what the metric-series recipe costs: on the 41 shared NAB series, one after
another with a fresh model each (as ``bench.nab`` runs them; no warm-up, the young phase
included), ``process_many`` in batches of ``--batch`` readings, of ``streammem.for_series()``
(its features, detector and likelihood) against the raw-value path, ``AlertFilter(MemAE())`` on
the value alone; reported as events/s of each and the recipe's share of the raw path's.

``--curve`` adds the quality / speed curve of the learning schedule: for each ``--budgets``
value, MemAE's mean AUROC on the 35 ADBench streams (read from the committed ``bench.stream``
ablation cells, ``--quality``) against its events/s measured here, plotted to
``throughput_curve.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cli import BENCH_DIR, RESULTS, bench_parser

OUT_DIR = RESULTS / "throughput"
DEFAULT_BUDGETS = (0.25, 0.5, 1.0, 2.0, 4.0)


# ---------------------------------------------------------------------------------- events
def kdd_events(n: int, root: str | None = None) -> pd.DataFrame:
    """``n`` raw KDDCUP99 records (label dropped) in ``default_rng(1)`` order.

    The sample is kept in ``bench/cache/`` so that a worker process reads only its rows: its
    peak RSS is then the contender's, not the 494,021-row file's.
    """
    from bench.datasets import KDDCUP99

    cached = BENCH_DIR / "cache" / f"kdd_events_{n}.parquet"
    if cached.is_file():
        return pd.read_parquet(cached)
    records = KDDCUP99(root).records().drop(columns="label")
    order = np.random.default_rng(1).permutation(len(records))[:n]
    sample = records.iloc[order].reset_index(drop=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    sample.to_parquet(cached)
    return sample


def river_baseline(fields: list[str]) -> Any:
    """The fastest pipeline a River user would write for these records: the fields selected
    by name (``compose.Select``; ``SelectType`` checks every value's type at every event and
    ran about 14,000 events/s here against about 19,000)."""
    from river import anomaly, compose, preprocessing

    from bench.datasets import KDDCUP99

    strings = [f for f in fields if f in KDDCUP99.categorical]
    numbers_scaled = compose.Select(*[f for f in fields if f not in strings])
    strings_encoded = compose.Select(*strings) | preprocessing.OneHotEncoder()
    return (
        numbers_scaled | preprocessing.MinMaxScaler()
    ) + strings_encoded | anomaly.HalfSpaceTrees()


def streammem_detector(spec: str) -> Any:
    """``MemAE`` or ``MemAE[budget=2]`` (a schedule budget)."""
    import streammem

    name, _, rest = spec.partition("[")
    if not rest:
        return getattr(streammem, name)(device="cpu")
    budget = float(rest.rstrip("]").partition("=")[2])
    return getattr(streammem, name)(device="cpu", schedule=streammem.Schedule(budget=budget))


# ---------------------------------------------------------------------------------- timing
def per_event(model: Any, rows: list[dict]) -> None:
    for x in rows:
        model.score_one(x)
        model.learn_one(x)


def batched(model: Any, frames: list[pd.DataFrame]) -> None:
    for frame in frames:
        encoded = model.encode_many(frame)
        model.score_many(encoded)
        model.learn_many(encoded)


def explain_cost(model: Any, frames: list[pd.DataFrame]) -> dict:
    """Seconds ``score_many`` and ``explain_many`` take on the same batches, and their ratio.

    Both run once untimed first (the first call after learning builds the model's NumPy copy,
    which the other then reuses), then alternate batch by batch, so that load on the machine
    falls on both alike.
    """
    methods = {"score_s": model.score_many, "explain_s": model.explain_many}
    for call in methods.values():
        call(frames[0])
    seconds = dict.fromkeys(methods, 0.0)
    for frame in frames:
        for name, call in methods.items():
            started = time.perf_counter()
            call(frame)
            seconds[name] += time.perf_counter() - started
    return {**seconds, "explain_over_score": seconds["explain_s"] / seconds["score_s"]}


SERIES_PATHS = ("series-raw", "series-recipe")


def nab_frames(root: str | None = None, names: list[str] | None = None) -> list[pd.DataFrame]:
    """The shared NAB series (all 41 unless ``names``) as ``bench.nab`` streams them."""
    from bench.nab import series_frame
    from bench.nab_score import NAB

    return [series_frame(series) for series in NAB(root).series(names)]


def series_cost(
    path: str, batch: int, root: str | None = None, names: list[str] | None = None
) -> dict:
    """Events/s of the raw-value path or the recipe over the NAB series; in the worker."""
    import streammem
    from bench.nab import TIME

    frames = nab_frames(root, names)
    recipe = path == "series-recipe"
    inputs = [frame if recipe else frame[["value"]] for frame in frames]
    wall, cpu = time.perf_counter(), time.process_time()
    for frame in inputs:
        model = (
            streammem.for_series(time_field=TIME)
            if recipe
            else streammem.AlertFilter(streammem.MemAE())
        )
        for start in range(0, len(frame), batch):
            model.process_many(frame.iloc[start : start + batch])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n_events = sum(map(len, frames))
    return {
        "contender": "for_series()" if recipe else "AlertFilter(MemAE()) on the value",
        "path": path,
        "events": n_events,
        "events_per_s": n_events / wall,
        "events_per_cpu_s": n_events / cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(contender: str, path: str, n_events: int, warmup: int, batch: int) -> dict:
    """Warm one contender up, then time it; runs inside the worker process."""
    if path in SERIES_PATHS:
        return series_cost(path, batch)  # the data root: STREAMMEM_DATA, as every loader reads
    frame = kdd_events(warmup + n_events)
    warm, timed = frame.iloc[:warmup], frame.iloc[warmup:]
    model = (
        river_baseline(list(frame.columns))
        if contender == "river"
        else streammem_detector(contender)
    )
    if path == "explain":
        batched(model, [warm.iloc[i : i + batch] for i in range(0, len(warm), batch)])
        split = [timed.iloc[i : i + batch] for i in range(0, len(timed), batch)]
        return {"contender": contender, "path": path, **explain_cost(model, split)}
    if path == "per-event":
        run, warm_input, timed_input = per_event, warm.to_dict("records"), timed.to_dict("records")
    else:
        split = [timed.iloc[i : i + batch] for i in range(0, len(timed), batch)]
        warm_split = [warm.iloc[i : i + batch] for i in range(0, len(warm), batch)]
        run, warm_input, timed_input = batched, warm_split, split
    run(model, warm_input)
    wall, cpu = time.perf_counter(), time.process_time()
    run(model, timed_input)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "contender": contender,
        "path": path,
        "events_per_s": n_events / wall,
        "events_per_cpu_s": n_events / cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "updates": getattr(model, "n_updates_", None),
    }


def run_worker(
    contender: str, path: str, args: argparse.Namespace, tree: Path | None = None
) -> dict:
    """Measure in a fresh process: its own imports, memory and thread pools; with ``tree``,
    that checkout's streammem and worker."""
    command = [
        sys.executable, "-m", "bench.throughput", "--worker", contender, "--path", path,
        "--events", str(args.events), "--warmup", str(args.warmup), "--batch", str(args.batch),
    ]  # fmt: skip
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}  # the detector limits its own pools
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, env=env, cwd=tree or BENCH_DIR.parent
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def checkout(ref: str, events: int) -> Iterator[Path]:
    """``ref`` in a temporary git worktree, holding the cached events this run times."""
    root = BENCH_DIR.parent
    tree = Path(tempfile.mkdtemp(prefix="streammem-baseline-")) / "tree"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(tree), ref],
                   check=True)  # fmt: skip
    try:
        cached = BENCH_DIR / "cache" / f"kdd_events_{events}.parquet"
        (tree / "bench" / "cache").mkdir(parents=True, exist_ok=True)
        shutil.copy(cached, tree / "bench" / "cache" / cached.name)
        yield tree
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                       check=False)  # fmt: skip
        shutil.rmtree(tree.parent, ignore_errors=True)


class Competitor:
    """A CPU-bound process on the side (a NumPy loop), for the loaded measurements."""

    def __enter__(self) -> Competitor:
        code = "import numpy as np\na = np.random.rand(300, 300)\nwhile True: a = a @ a / 300.0"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-c", code], env=env)
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


# ---------------------------------------------------------------------------------- report
def run(args: argparse.Namespace) -> dict:
    kdd_events(args.warmup + args.events)  # cached once, before any worker reads it
    load_at_start = os.getloadavg()  # before the workers add their own
    baseline = (
        checkout(args.baseline, args.warmup + args.events)
        if args.baseline
        else contextlib.nullcontext()
    )
    with baseline as tree:
        rows = _measure_plan(args, tree)
    return {
        "command": "python -m bench.throughput " + " ".join(sys.argv[1:]),
        "events": args.events,
        "warmup": args.warmup,
        "batch": args.batch,
        "data": "KDDCUP99 10% raw records, default_rng(1) order",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "load_average_at_start": load_at_start,
        "rows": rows,
    }


def _measure_plan(args: argparse.Namespace, tree: Path | None) -> list[dict]:
    plan: list[tuple[str, str, Path | None]] = [("river", "per-event", None)]
    for name in args.models.split(","):
        plan += [(name, "per-event", None), (name, "many", None)]
        if tree is not None:
            plan += [(name, "per-event", tree), (name, "many", tree)]
    conditions = ["quiet", "loaded"] if args.load else ["quiet"]
    rows = []
    for condition in conditions:
        print(f"{condition}:", flush=True)
        for contender, path, where in plan:
            with Competitor() if condition == "loaded" else contextlib.nullcontext():
                row = run_worker(contender, path, args, where)
            if where is not None:
                row["contender"] = f"{contender}@{args.baseline}"
            row["condition"] = condition
            rows.append(row)
            print(f"  {row['contender']:<18} {path:<10} {row['events_per_s']:>10,.0f} events/s "
                  f"{row['peak_rss_mb']:>7.0f} MB", flush=True)  # fmt: skip
    for row in rows:
        river = next(r for r in rows if r["contender"] == "river"
                     and r["condition"] == row["condition"])  # fmt: skip
        row["ratio_vs_river"] = row["events_per_s"] / river["events_per_s"]
        base = next((r for r in rows if r["contender"] == f"{row['contender']}@{args.baseline}"
                     and r["path"] == row["path"] and r["condition"] == row["condition"]),
                    None)  # fmt: skip
        if base is not None:
            row["ratio_vs_baseline"] = row["events_per_s"] / base["events_per_s"]
    return rows


def series_rows(args: argparse.Namespace) -> list[dict]:
    """The raw-value path and the recipe over the NAB series, each in its own worker, and
    the recipe's events/s as a share of the raw path's (same run)."""
    if args.data_root:
        os.environ["STREAMMEM_DATA"] = args.data_root  # the workers read it
    print("metric series (41 NAB files):", flush=True)
    rows = [run_worker("series", path, args) for path in SERIES_PATHS]
    raw, recipe = rows
    recipe["share_of_raw"] = recipe["events_per_s"] / raw["events_per_s"]
    for row in rows:
        print(f"  {row['contender']:<36} {row['events_per_s']:>10,.0f} events/s", flush=True)
    print(f"  the recipe runs at {recipe['share_of_raw']:.2f}x the raw path's events/s")
    return rows


ABLATIONS = RESULTS / "stream" / "ablations" / "cells.csv"


def curve(args: argparse.Namespace, out: Path) -> list[dict]:
    """Mean AUROC on the ADBench streams against events/s, one point per budget.

    The quality side is read from the committed ``bench.stream`` ablation run (its command is
    in the README); only the speed side is measured here, in this run.
    """
    cells = pd.read_csv(args.quality)
    points = []
    for budget in args.budgets:
        timing = run_worker(f"MemAE[budget={budget}]", "many", args)
        points.append({"budget": budget, **budget_quality(cells, budget, args.quality), **timing})
        print(f"  budget {budget:<5} mean AUROC {points[-1]['mean_auroc']:.4f} "
              f"{timing['events_per_s']:>10,.0f} events/s", flush=True)  # fmt: skip
    _plot_curve(points, floor_auroc(cells), out / "throughput_curve.png")
    return points


def budget_quality(cells: pd.DataFrame, budget: float, source: Path) -> dict:
    """MemAE's mean AUROC over the ADBench sets at ``budget``, from bench.stream ``cells``."""
    from streammem import Schedule

    default = budget == Schedule().budget
    name = "MemAE" if default else f"MemAE[schedule=Schedule(budget={budget:g})]"
    rows = cells[(cells["contender"] == name) & cells["dataset"].str.startswith("adbench:")]
    if rows.empty:
        raise SystemExit(f"{source} has no cells of {name}: run bench.stream on it first")
    return {"mean_auroc": float(rows["auroc"].mean()), "sets": len(rows)}


def floor_auroc(cells: pd.DataFrame) -> float | None:
    """The no-model floor's mean AUROC on the ADBench sets of bench.stream ``cells``, if it
    ran there."""
    rows = cells[(cells["contender"] == "floor") & cells["dataset"].str.startswith("adbench:")]
    return float(rows["auroc"].mean()) if len(rows) else None


def _plot_curve(points: list[dict], floor: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    speed = [p["events_per_s"] for p in points]
    quality = [p["mean_auroc"] for p in points]
    ax.plot(speed, quality, "o-", color="tab:red")
    for i, p in enumerate(points):  # labels alternate above and below: neighbours can touch
        offset = (-20, 8 if i % 2 else -14)
        ax.annotate(f"budget {p['budget']:g}", (p["events_per_s"], p["mean_auroc"]),
                    textcoords="offset points", xytext=offset, fontsize=8)  # fmt: skip
    if floor is not None:  # the scale that matters: how far above no model at all
        ax.axhline(floor, color="grey", linestyle="--", linewidth=1)
        ax.annotate("no model (floor)", (min(speed), floor), textcoords="offset points",
                    xytext=(0, 4), fontsize=8, color="grey")  # fmt: skip
        ax.set_ylim(min(floor, *quality) - 0.01, max(quality) + 0.01)
    ax.set_xlabel("events/s, batched path (KDDCUP99, this machine)")
    ax.set_ylabel("mean AUROC, 35 ADBench streams")
    ax.set_title("MemAE: quality against speed by schedule budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__name__, __doc__, data="nab/ (for --series)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--models", default="MemAE", help="comma-separated detector names")
    parser.add_argument("--load", action="store_true", help="also measure under CPU load")
    parser.add_argument("--baseline", help="a git revision to time the same models at")
    parser.add_argument("--curve", action="store_true", help="quality / speed by budget")
    parser.add_argument("--explain", action="store_true", help="explain_many / score_many cost")
    parser.add_argument("--series", action="store_true", help="the metric-series recipe's cost")
    parser.add_argument("--budgets", type=lambda t: [float(b) for b in t.split(",")],
                        default=list(DEFAULT_BUDGETS))  # fmt: skip
    parser.add_argument("--quality", type=Path, default=ABLATIONS,
                        help="bench.stream cells.csv holding MemAE at each budget")  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT_DIR / "throughput.json")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the curve: --out's speeds, --quality's AUROC")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.path, args.events, args.warmup, args.batch)))
        return
    if args.plot_only:  # the speeds as measured, the quality as the cells say now
        result = json.loads(args.out.read_text())
        cells = pd.read_csv(args.quality)
        for point in result["curve"]:
            point.update(budget_quality(cells, point["budget"], args.quality))
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        _plot_curve(result["curve"], floor_auroc(cells), args.out.parent / "throughput_curve.png")
        return
    result = run(args)
    if args.explain:
        result["explain"] = [run_worker(name, "explain", args) for name in args.models.split(",")]
        for row in result["explain"]:
            print(f"  {row['contender']:<18} explain_many / score_many "
                  f"{row['explain_over_score']:.2f}x (same batches, same run)")  # fmt: skip
    if args.series:
        result["series"] = series_rows(args)
    if args.curve:
        print("quality / speed by budget:", flush=True)
        result["curve"] = curve(args, args.out.parent)
    print("\nratio vs River (same events, same run):")
    for row in result["rows"][1:]:
        print(f"  {row['condition']:<7} {row['contender']:<18} {row['path']:<10} "
              f"{row['ratio_vs_river']:>6.2f}x"
              + (f"   {row['ratio_vs_baseline']:.2f}x {args.baseline}"
                 if "ratio_vs_baseline" in row else ""))  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
