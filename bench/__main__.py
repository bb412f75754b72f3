"""``python -m bench NAME [flags]`` runs one benchmark; ``python -m bench`` lists them.

A benchmark is a module of this package with a ``main(argv)``; it is found by reading the
package's files (nothing is imported to list them), so a new one needs no registration.
``python -m bench NAME`` and ``python -m bench.NAME`` are the same command.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from collections.abc import Sequence

from bench.cli import BENCH_DIR

__all__ = ["commands", "main"]

#: A docstring's own ``: python -m bench.NAME ...`` (the listing already names the command).
_OWN_COMMAND = re.compile(r":\s*``python -m bench\.[^`]*``\.?$")


def commands() -> dict[str, str]:
    """Each benchmark's name and the first line of its docstring, by name."""
    found = {}
    for path in sorted(BENCH_DIR.glob("[!_]*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            first = (ast.get_docstring(tree) or "").split("\n")[0]
            found[path.stem] = _OWN_COMMAND.sub(".", first)
    return found


def _listing(available: dict[str, str]) -> str:
    width = max(map(len, available))
    lines = [f"  {name:<{width}}  {summary}" for name, summary in available.items()]
    return "usage: python -m bench NAME [flags]   (NAME --help for its flags)\n\n" + "\n".join(
        lines
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    available = commands()
    if not args or args[0] in ("-h", "--help"):
        print(_listing(available))
        return 0
    name, rest = args[0].replace("-", "_"), args[1:]
    if name not in available:
        print(f"no benchmark {args[0]!r}\n\n{_listing(available)}", file=sys.stderr)
        return 2
    code = importlib.import_module(f"bench.{name}").main(rest)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
