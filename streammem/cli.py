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
from typing import Any

from connectors import SourceError
from streammem import __version__
from streammem.service.config import ConfigError, bundled_config, load_config

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
    "Parquet file, or the bundled demo stream when no --config is given; 'streammem serve' "
    "scores a Kafka topic until SIGTERM."
)


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
    run.add_argument("--config", help="YAML config; omit it to run the bundled sensor demo")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    serve = commands.add_parser("serve", help="run the Kafka daemon until SIGTERM / SIGINT")
    serve.add_argument("--config", required=True, help="YAML config with a kafka section")
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


def _run(args: argparse.Namespace) -> int:
    from streammem.service.job import run_job

    config = load_config(args.config or bundled_config("sensor_demo"))
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

    config = load_config(args.config, overrides=_overrides(args))
    for part in ("source", "sink"):
        if getattr(config, part).kind != "kafka":
            raise ConfigError(f"{part}.kind: `streammem serve` needs 'kafka'; use `streammem run`")
    return Daemon(config).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
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
