"""Parse a container's command line with the real `laneway` parser, as the container would."""

from __future__ import annotations

import argparse
import contextlib
import io

from laneway.cli import _parser


def parse(args: list[str], where: str) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return _parser().parse_args(args)
    except SystemExit:
        raise AssertionError(f"{where}: `laneway {' '.join(args)}` is refused by the CLI: {err.getvalue()}") from None
