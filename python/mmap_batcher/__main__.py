"""``python -m mmap_batcher ...`` (and the ``mmap-batcher`` console script): the same
command line as the Rust binary, run inside the extension."""

from __future__ import annotations

import signal
import sys

from ._native import cli_main


def main() -> None:
    """Runs the command line with ``sys.argv`` and exits with its status."""
    # A command line: Ctrl-C ends it at once, as the binary does (Python's handler would
    # only set a flag the Rust code never reads).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(cli_main(["mmap-batcher", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
