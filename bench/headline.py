"""The README's headline quality table, computed from the committed bench results.

    python -m bench.headline           # print the table
    python -m bench.headline --write   # rewrite it in README.md, between its markers

Read from ``bench/results/stream/cells.csv`` (``python -m bench.stream``) and
``bench/results/sensors/cells.csv`` (``python -m bench.sensors``): whatever contenders those
runs hold, a detector run with several seeds (``MemAE``, ``MemAE[seed=1]``, ...) as the mean over
its seeds. ``tests/test_docs.py`` fails when the README's table is not this one, so rerunning a
bench and then ``--write`` keeps the two in step; no number in it is typed by hand.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from bench.cli import RESULTS, bench_parser

__all__ = ["README", "table", "write"]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"

_SEED = re.compile(r"\[seed=\d+\]$")
#: Display names; a contender not named here is shown as the bench names it.
_NAMES = {
    "floor": "**floor (no model)**",
    "linear": "streaming linear reference",
    "river_HST": "River HalfSpaceTrees",
    "river_LODA": "River LODA",
    "river_OCSVM": "River OneClassSVM",
    "pysad_RSHash": "PySAD RS-Hash",
    "pysad_LODA": "PySAD LODA",
    "pysad_xStream": "PySAD xStream",
    "offline_IForest": "IsolationForest (offline reference)",
}
#: The same contender under its name in bench.sensors, where it differs.
_SENSORS_NAME = {"floor": "nomodel"}
#: Row order by bench.stream's group; groups not listed come last, as they appear.
_GROUPS = ("streammem", "floor", "reference", "river", "pysad", "offline")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("status", "ok") == "ok"]


def _stream(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """``auroc[contender][dataset]`` (seeds averaged) and each contender's group."""
    runs: dict[tuple[str, str], list[float]] = defaultdict(list)
    groups: dict[str, str] = {}
    for row in _rows(path):
        if not row.get("auroc"):
            continue
        name = _SEED.sub("", row["contender"])
        runs[name, row["dataset"]].append(float(row["auroc"]))
        groups.setdefault(name, row.get("group", ""))
    auroc: dict[str, dict[str, float]] = defaultdict(dict)
    for (name, dataset), values in runs.items():
        auroc[name][dataset] = sum(values) / len(values)
    return auroc, groups


def _skab(path: Path) -> tuple[dict[str, float], int]:
    """Mean per-file streaming AUROC on raw rows, by contender, and the number of files."""
    rows = [r for r in _rows(path) if r.get("column") == "streaming" and r.get("mean_auroc")]
    files = max((int(r["files"]) for r in rows if r.get("files")), default=0)
    return {r["contender"]: float(r["mean_auroc"]) for r in rows}, files


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def table(results: Path = RESULTS) -> str:
    """The headline table as Markdown, from the cells of the last committed runs."""
    auroc, groups = _stream(results / "stream" / "cells.csv")
    skab, files = _skab(results / "sensors" / "cells.csv")
    floor = auroc.get("floor", {})
    sets = sorted({d for cells in auroc.values() for d in cells if d.startswith("adbench:")})
    order = {group: i for i, group in enumerate(_GROUPS)}
    names = sorted(auroc, key=lambda n: order.get(groups[n], len(order)))
    lines = [
        f"| contender | mean AUROC, {len(sets)} ADBench streams | sets ≥ floor | KDDCUP99 "
        f"| SKAB, {files} files, streaming |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:
        cells = auroc[name]
        ran = [d for d in sets if d in cells]
        mean = sum(cells[d] for d in ran) / len(ran) if len(ran) == len(sets) else None
        above = sum(cells[d] >= floor[d] for d in ran if d in floor)
        shown = _NAMES.get(name, f"streammem.{name}" if groups[name] == "streammem" else name)
        kdd = next((v for d, v in cells.items() if d.startswith("kddcup")), None)
        lines.append(
            f"| {shown} | {_fmt(mean)} | {'' if name == 'floor' else above} | {_fmt(kdd)} "
            f"| {_fmt(skab.get(_SENSORS_NAME.get(name, name)))} |"
        )
    return "\n".join(lines) + "\n"


def write(readme: Path = README, results: Path = RESULTS) -> bool:
    """Put :func:`table` between the markers in ``readme``; ``True`` if that changed it."""
    text = readme.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    new = text[:start] + "\n" + table(results) + text[end:]
    if new != text:
        readme.write_text(new)
    return new != text


def shown(readme: Path = README) -> str:
    """The table as the README shows it now."""
    text = readme.read_text()
    return text[text.index(START) + len(START) : text.index(END)].lstrip("\n")


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__name__, __doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args(argv)
    if args.write:
        print("README.md updated" if write() else "README.md already up to date")
    else:
        print(table(), end="")


if __name__ == "__main__":
    main()
