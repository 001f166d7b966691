"""The ``crossmargin`` command line.

Exit codes: 0 fine, 1 a chain or service could not be reached / fatal error, 2 bad config or
usage, 3 a price is not OK (``prices``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from core.errors import ConfigError, CrossmarginError
from daemon.config import load_config
from daemon.logs import setup_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossmargin", description="Cross-chain collateral aggregation daemon."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser(
        "snapshot", help="read every watched balance once on every chain and print it"
    )
    snap.add_argument("-c", "--config", required=True, help="path to the YAML config")
    snap.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    demo = commands.add_parser(
        "demo", help="run local Anvil chains with seeded accounts and watch them live"
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crossmargin`` console script."""
    args = _parser().parse_args(argv)
    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.command == "demo":
            from daemon.demo import run_demo

            return asyncio.run(run_demo(duration_s=args.duration))
        config = load_config(args.config)
        if args.command == "snapshot":
            from daemon.snapshot import print_snapshot, take_snapshot

            snapshots = asyncio.run(take_snapshot(config))
            return print_snapshot(snapshots, as_json=args.json)
    except ConfigError as exc:
        print(f"crossmargin: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except CrossmarginError as exc:
        print(f"crossmargin: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
