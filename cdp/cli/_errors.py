"""Mapping errors to one line and an exit code: the CLI's single error boundary."""

from __future__ import annotations

import sys
from typing import NoReturn

from cdp._exceptions import CDPError


def fail(error: CDPError) -> NoReturn:
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(error.exit_code)
