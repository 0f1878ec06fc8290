"""``uv run python -m benchmarks [--quick] [--only P1,P6]``."""

from __future__ import annotations

import sys

from benchmarks.suite import main

if __name__ == "__main__":
    sys.exit(main())
