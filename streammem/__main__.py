"""``python -m streammem``: the ``streammem`` command."""

from __future__ import annotations

import sys

from streammem.cli import main

if __name__ == "__main__":  # not when a doctest run imports it
    sys.exit(main())
