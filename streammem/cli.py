"""``streammem run`` (finite jobs and the bundled demo) and ``streammem serve`` (Kafka daemon).

Mistakes in what the user gave (the config, the input file, the metrics port) end with one
line per problem on stderr and exit status 2, never a traceback. A run that scored nothing
because every record it read was dead-lettered exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors import CLIENT_LOGGERS, SourceError
from streammem import __version__
from streammem.service.config import (
    ConfigError,
    bundled_config,
    bundled_names,
    load_config,
    parse_config,
)

__all__ = ["main"]

# Command-line flag -> (config section, key). Each also reads STREAMMEM_<FLAG> from the
# environment; the command line wins over the environment, which wins over the file, and the
# config checks them all alike.
_SERVE_OVERRIDES = {
    "bootstrap-servers": ("kafka", "bootstrap_servers", str),
    "input-topic": ("kafka", "input_topic", str),
    "output-topic": ("kafka", "output_topic", str),
    "dead-letter-topic": ("kafka", "dead_letter_topic", str),
    "group-id": ("kafka", "group_id", str),
    "metrics-port": ("metrics", "port", int),
    "checkpoint-dir": ("checkpoint", "dir", str),
}


def _env_name(flag: str) -> str:
    return "STREAMMEM_" + flag.upper().replace("-", "_")


_DESCRIPTION = (
    "Online anomaly detection with memory-augmented autoencoders. 'streammem run' scores a "
    "Parquet or CSV file, or the bundled demo stream when neither --config nor --input is "
    "given; 'streammem serve' scores a Kafka topic until SIGTERM. --config takes a YAML file "
    f"or the name of a bundled config ({', '.join(bundled_names())})."
)
_INPUT_KINDS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streammem", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"streammem {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="score a file or the bundled demo stream (no --config) into a Parquet file"
    )
    run.add_argument(
        "--config", help="YAML config or bundled name; omit both it and --input for the demo"
    )
    run.add_argument(
        "--input",
        help="the file to score (.parquet or .csv), instead of the config's source.path; "
        "without --config, with the default model",
    )
    run.add_argument(
        "--output",
        help="the results file (Parquet), instead of the config's sink.path; its plot goes "
        "beside it (.png)",
    )
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    serve = commands.add_parser("serve", help="run the Kafka daemon until SIGTERM / SIGINT")
    serve.add_argument(
        "--config", required=True, help="YAML config with a kafka section, or kafka_daemon"
    )
    for flag, (_section, _key, kind) in _SERVE_OVERRIDES.items():
        serve.add_argument(
            f"--{flag}",
            type=kind,
            default=os.environ.get(_env_name(flag)),
            help=f"overrides the config (env {_env_name(flag)})",
        )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of the flags (or environment variables) given."""
    overrides: dict[str, dict[str, Any]] = {}
    for flag, (section, key, _kind) in _SERVE_OVERRIDES.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _config_path(given: str) -> Path:
    """A config file, or the bundled config of that name (``kddcup``, ``kafka_daemon``...)."""
    path = Path(given)
    if path.is_file() or given not in bundled_names():
        return path
    return bundled_config(given)


def _file_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of ``run``'s --input and --output."""
    overrides: dict[str, dict[str, Any]] = {}
    if args.input is not None:
        kind = _INPUT_KINDS.get(Path(args.input).suffix.lower())
        if kind is None:
            raise ConfigError(
                f"--input: {args.input!r} must end in {', '.join(_INPUT_KINDS)} (Parquet or CSV)"
            )
        overrides["source"] = {"kind": kind, "path": args.input}
    output = args.output
    if output is None and args.input is not None and args.config is None:
        output = str(Path("output") / f"{Path(args.input).stem}-scores.parquet")
    if output is not None:
        overrides["sink"] = {"kind": "parquet", "path": output}
        if args.config is None:
            overrides["sink"]["plot"] = str(Path(output).with_suffix(".png"))
    return overrides


def _run(args: argparse.Namespace) -> int:
    from streammem.service.job import run_job

    overrides = _file_overrides(args)
    if args.config is None and args.input is not None:
        config = parse_config({}, "the default config", overrides)  # the default model
    else:
        path = _config_path(args.config) if args.config else bundled_config("sensor_demo")
        config = load_config(path, overrides=overrides)
    if args.output is not None and config.sink.plot:  # the plot goes with its results
        config.sink.plot = str(Path(args.output).with_suffix(".png"))
    report = run_job(config, progress=not args.no_progress)
    print(report)
    if report.nothing_scored:
        where = f" (see {report.dead_letter_file})" if report.dead_letter_file else ""
        print(
            f"streammem: error: none of the {report.summary.dead_letters} records was scored: "
            f"every one was dead-lettered{where}",
            file=sys.stderr,
        )
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    from streammem.service.daemon import Daemon

    config = load_config(_config_path(args.config), overrides=_overrides(args))
    for part in ("source", "sink"):
        if getattr(config, part).kind != "kafka":
            raise ConfigError(f"{part}.kind: `streammem serve` needs 'kafka'; use `streammem run`")
    return Daemon(config).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet = logging.DEBUG if args.log_level == "DEBUG" else logging.CRITICAL
    for name in CLIENT_LOGGERS:  # every retry of an outage; the daemon logs its state itself
        logging.getLogger(name).setLevel(quiet)
    try:
        return (_run if args.command == "run" else _serve)(args)
    except ConfigError as err:
        for problem in str(err).splitlines():
            print(f"streammem: configuration error: {problem}", file=sys.stderr)
    except SourceError as err:
        print(f"streammem: input error: {err}", file=sys.stderr)
    except OSError as err:  # an output folder that cannot be written, a full disk
        print(f"streammem: error: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
