"""CI: the package as installed with no extras imports every public module and runs the README's
alerts example (run from outside the checkout, by the fresh venv's python)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

# Modules that document an optional dependency (an extra) and say so when it is missing.
NEEDS_EXTRA = {"connectors.confluent": "confluent_kafka"}


def modules() -> list[str]:
    names = []
    for package in ("streammem", "connectors"):
        root = importlib.import_module(package)
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
    return names


def main(readme: Path) -> int:
    failed = []
    names = modules()
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if NEEDS_EXTRA.get(name) != err.name:
                failed.append(f"{name}: {err}")
    for line in failed:
        print("import failed:", line)
    example = re.search(
        r"\[start:alerts-example\] -->\n```python\n(.*?)```", readme.read_text(), re.S
    )
    assert example, "the README lost its alerts example"
    exec(compile(example.group(1), str(readme), "exec"), {})
    print(f"{len(names)} modules imported with no extras; the README's example ran")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
