"""Helpers shared by the bench command lines."""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "RESULTS",
    "bench_parser",
    "parse_ints",
    "report_dir",
    "split_list",
    "streammem_value",
    "variant_params",
    "variant_sources",
]

#: The bench folder: its ``cache/`` and ``results/`` are the commands' default places.
BENCH_DIR = Path(__file__).resolve().parent
#: The committed reports: one folder per benchmark (``papers/`` for reproduce and ablations).
RESULTS = BENCH_DIR / "results"


def bench_parser(
    module: str,
    doc: str | None,
    *,
    quick: str | None = None,
    data: str | None = None,
    download: bool = False,
    out: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """The parser every bench command starts from, so that the flags they share are spelt,
    and mean, the same in each.

    ``module`` is the command's module (``"bench.stream"``, run as ``python -m bench stream``);
    the description is the first paragraph of ``doc``. ``quick`` (what the smoke run does) adds
    ``--quick``, ``data`` (the folders read) ``--data-root``, ``download`` ``--download``, and
    ``out`` (the report folder under ``bench/results/``) ``--out``.

    Examples
    --------
    >>> parser = bench_parser("bench.demo", "A demo.", quick="one set", out="demo")
    >>> parser.prog, parser.parse_args(["--quick"])
    ('python -m bench demo', Namespace(quick=True, out=None))
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {module.removeprefix('bench.')}",
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )
    if quick:
        parser.add_argument("--quick", action="store_true", help=f"CI smoke run: {quick}")
    if data:
        parser.add_argument("--data-root", help=f"folder holding {data} (or env STREAMMEM_DATA)")
    if download:
        parser.add_argument("--download", action="store_true", help="fetch missing files")
    if out:
        parser.add_argument(
            "--out", type=Path, help=f"report folder (default: bench/results/{out})"
        )
    return parser


def report_dir(args: argparse.Namespace, name: str, quick_dir: Path) -> Path:
    """Where a command writes its report: ``--out``, else ``quick_dir`` for ``--quick`` (under
    the git-ignored cache), else ``bench/results/<name>``."""
    if args.out is not None:
        return args.out
    return quick_dir if args.quick else RESULTS / name


def split_list(text: str | None, default: Sequence[str]) -> list[str]:
    """A comma-separated flag as a list, ``default`` when it is empty; commas inside brackets
    belong to their item (``MemAE[a=1;b=(1,2)]`` is one).

    Examples
    --------
    >>> split_list("floor, MemAE[a=1;b=(1,2)]", ["x"])
    ['floor', 'MemAE[a=1;b=(1,2)]']
    >>> split_list(None, ["x"])
    ['x']
    """
    if not text:
        return list(default)
    return [part.strip() for part in re.split(r",(?![^\[]*\])", text) if part.strip()]


def streammem_value(source: str) -> Any:
    """A parameter's value as a command line writes it: a Python expression over the names
    ``streammem`` exports (``Schedule(budget=2)``, ``(64, 32)``, ``None``), without builtins.

    Examples
    --------
    >>> streammem_value("Schedule(budget=2)").budget, streammem_value("(64, 32)")
    (2, (64, 32))
    """
    import streammem

    namespace: dict[str, Any] = {name: getattr(streammem, name) for name in streammem.__all__}
    namespace["__builtins__"] = {}
    return eval(source, namespace)  # our own command line's text, no builtins


def variant_sources(text: str) -> tuple[tuple[str, str], ...]:
    """A variant's brackets, ``key=expr;key=expr``, as (key, expression text) pairs; a typo
    in an expression fails here, before anything runs.

    Examples
    --------
    >>> variant_sources("network=Network(hidden_sizes=(64, 32)); schedule=Schedule(trim=0.25)")
    (('network', 'Network(hidden_sizes=(64, 32))'), ('schedule', 'Schedule(trim=0.25)'))
    """
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, value = part.partition("=")
        ast.parse(value.strip(), mode="eval")  # a readable error for a typo
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def variant_params(text: str) -> dict[str, Any]:
    """The parameters of a variant's brackets (:func:`variant_sources`), evaluated by
    :func:`variant_kwargs`.

    Examples
    --------
    >>> sorted(variant_params("radius_quantile=None; schedule=Schedule(trim=0.25)"))
    ['radius_quantile', 'schedule']
    >>> variant_params("")
    {}
    """
    return variant_kwargs(variant_sources(text))


def variant_kwargs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """(key, expression text) pairs evaluated by :func:`streammem_value`; the network's
    settings given one by one, as in the commands committed before :class:`streammem.Network`
    (``MemAE[hidden_sizes=(64,32)]``), are read into ``network``, so those commands still run.

    Examples
    --------
    >>> variant_kwargs([("hidden_sizes", "(64, 32)")])["network"].hidden_sizes
    (64, 32)
    """
    from streammem.nn.network import fold_network_params

    params = {key: streammem_value(value) for key, value in pairs}
    return fold_network_params(params, accepted=("network",))


def parse_ints(text: str | None) -> list[int] | None:
    """``"0-2,5"`` → ``[0, 1, 2, 5]``; ``None`` stays ``None`` (use the table's default)."""
    if text is None:
        return None
    values: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        values += range(int(low), int(high or low) + 1)
    return values
