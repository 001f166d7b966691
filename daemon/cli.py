"""The ``crossmargin`` command line.

Exit codes: 0 fine, 1 a chain or service could not be reached / fatal error, 2 bad config or
usage, 3 a price is not OK (``prices``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TypeVar
from urllib.parse import urlsplit

from core.addresses import normalize_address
from core.errors import ConfigError, CrossmarginError
from core.redaction import scrub
from daemon.config.load import load_config
from daemon.config.model import API_DEFAULT_LISTEN
from daemon.logs import setup_logging
from margin.model import parse_flag
from venues.errors import VenueSetupError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
DEFAULT_API_URL = "http://127.0.0.1:8080"

_N = TypeVar("_N", int, float)


def _positive(kind: Callable[[str], _N]) -> Callable[[str], _N]:
    def parse(text: str) -> _N:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def _address(text: str) -> str:
    try:
        return normalize_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (got {text!r})") from None


def _flag(text: str) -> str:
    try:
        return str(parse_flag(text).name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _api_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be http(s)://host[:port] (got {text!r})")
    return text


def _shock(text: str) -> tuple[str, float]:
    from daemon.commands.stress import parse_shock

    return parse_shock(text)


def _version() -> str:
    try:
        return metadata.version("crossmargin")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (reading the package
    metadata costs ~0.1 s, a third of a short command's start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=str(kwargs["help"])
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {_version()}")  # stdout, as argparse's "version" action
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossmargin", description="Cross-chain collateral aggregation daemon."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action=_VersionAction, help="show the version number and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser(
        "snapshot", help="read every watched balance once on every chain and print it"
    )
    snap.add_argument("-c", "--config", required=True, help="path to the YAML config")
    snap.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    migrate = commands.add_parser(
        "migrate", help="bring the database schema to a revision (default: the newest)"
    )
    migrate.add_argument("-c", "--config", required=True, help="path to the YAML config")
    migrate.add_argument(
        "--revision", default="head", help="head (default), base, a revision id, or -1/+1"
    )
    migrate.add_argument("--sql", action="store_true", help="print the SQL, change nothing")
    prices = commands.add_parser(
        "prices", help="run oracle rounds and print each asset's price, status and sources"
    )
    prices.add_argument("-c", "--config", required=True, help="path to the YAML config")
    prices.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    prices.add_argument(
        "--rounds", type=_positive(int), default=1, help="rounds to run (default 1)"
    )
    prices.add_argument(
        "--interval",
        type=_positive(float),
        default=None,
        help="seconds between rounds (default: oracle_polling.round_interval_s)",
    )
    run = commands.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    run.add_argument("-c", "--config", required=True, help="path to the YAML config")
    run.add_argument(
        "--migrate", action="store_true", help="upgrade the database schema before starting"
    )
    health = commands.add_parser(
        "health", help="one full pass (balances, prices, engine) and print every account"
    )
    health.add_argument("-c", "--config", required=True, help="path to the YAML config")
    health.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    health.add_argument(
        "--account", type=_address, default=None, help="only this account (any hex case)"
    )
    stress = commands.add_parser(
        "stress", help="one full pass like health, then the book under price/volatility shocks"
    )
    stress.add_argument("-c", "--config", required=True, help="path to the YAML config")
    stress.add_argument(
        "--shock",
        type=_shock,
        action="append",
        default=[],
        metavar="ASSET=±N%",
        help="move a price, e.g. ETH=-30%% (repeatable)",
    )
    stress.add_argument(
        "--vol",
        type=_shock,
        action="append",
        default=[],
        metavar="ASSET=±N%",
        help="move the volatility the engine uses, e.g. ETH=+50%% (repeatable)",
    )
    stress.add_argument("--json", action="store_true", help="the JSON document of POST /v1/stress")
    check = commands.add_parser(
        "check", help="validate the config and reach every RPC, token, price source, DB, broker"
    )
    check.add_argument("-c", "--config", required=True, help="path to the YAML config")
    check.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    check.add_argument(
        "--timeout", type=_positive(float), default=None, help="seconds per check (default 10)"
    )
    accounts = commands.add_parser(
        "accounts",
        help="list accounts from a running daemon's API: liquidatable ones, or those with a flag",
    )
    accounts.add_argument(
        "--url", type=_api_url, default=DEFAULT_API_URL, help=f"the API (default {DEFAULT_API_URL})"
    )
    accounts.add_argument(
        "--flag",
        type=_flag,
        action="append",
        default=[],
        help="accounts carrying this flag (repeat for any of several); default: liquidatable",
    )
    accounts.add_argument(
        "--limit", type=_positive(int), default=1000, help="at most this many (default 1000)"
    )
    accounts.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    demo = commands.add_parser(
        "demo", help="local chains, exchanges and the daemon playing an ETH crash, viewed live"
    )
    demo.add_argument(
        "--duration", type=_positive(float), default=None, help="stop after this many seconds"
    )
    demo.add_argument("--accounts", type=_positive(int), help="accounts to seed (default 1000)")
    demo.add_argument("--api", help=f"API host:port (default {API_DEFAULT_LISTEN})")
    demo.add_argument(
        "--no-view", action="store_true", help="one summary line every 2 s instead of the view"
    )
    demo.add_argument(
        "--speed", type=_positive(float), help="play the scenario N times faster (default 1)"
    )
    demo.add_argument("--seed", type=int, help="random seed of the portfolios (default 7)")
    demo.add_argument(
        "--model",
        choices=["weighted", "tiered", "portfolio"],
        help="margin model (default weighted); portfolio adds hedged accounts and shows what "
        "weighted would say of them",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crossmargin`` console script."""
    args = _parser().parse_args(argv)
    setup_logging(logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.command == "demo":
            try:
                from demo.run import DemoOptions, run_demo
            except ModuleNotFoundError as exc:
                if exc.name not in ("demo", "devnet"):
                    raise
                # The wheel carries the product only: the demo needs a checkout (Anvil, fixtures).
                print("crossmargin: the demo runs from a checkout: make demo", file=sys.stderr)
                return EXIT_FAILURE

            given = {
                "accounts": args.accounts,
                "api": args.api,
                "speed": args.speed,
                "seed": args.seed,
                "model": args.model,
            }  # unset options keep DemoOptions' defaults
            options = DemoOptions(
                duration_s=args.duration,
                view=not args.no_view,
                **{k: v for k, v in given.items() if v is not None},
            )
            return asyncio.run(run_demo(options))
        if args.command == "accounts":
            from daemon.commands.accounts import run_accounts

            return asyncio.run(
                run_accounts(args.url, args.flag, limit=args.limit, as_json=args.json)
            )
        config = load_config(args.config)
        if args.command == "run":
            from daemon.service import run_until_signalled

            return asyncio.run(run_until_signalled(config, auto_migrate=args.migrate))
        if args.command == "health":
            from daemon.commands.health import health_pass, print_health

            found = asyncio.run(health_pass(config))
            return print_health(found, as_json=args.json, account=args.account)
        if args.command == "stress":
            from daemon.commands.stress import run_stress_command

            return run_stress_command(config, prices=args.shock, vols=args.vol, as_json=args.json)
        if args.command == "snapshot":
            from daemon.commands.snapshot import print_snapshot, take_snapshot

            snapshots = asyncio.run(take_snapshot(config))
            return print_snapshot(snapshots, as_json=args.json)
        if args.command == "migrate":
            from daemon.commands.migrate import run_migrate_command

            url = config.database_url or ""
            return run_migrate_command(url, revision=args.revision, sql=args.sql)
        if args.command == "check":
            from daemon.commands.check import run_check

            return asyncio.run(run_check(config, as_json=args.json, timeout_s=args.timeout))
        if args.command == "prices":
            from daemon.commands.prices import run_prices

            return asyncio.run(
                run_prices(config, rounds=args.rounds, interval_s=args.interval, as_json=args.json)
            )
    except (ConfigError, VenueSetupError) as exc:
        print(f"crossmargin: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except CrossmarginError as exc:
        print(f"crossmargin: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
