"""``PUT /v1/positions/{address}``: the body, its validation, and what may be posted.

Each item is a perp (``kind: perp``, the default) or an option (``kind: option``: ``right``,
``strike``, ``expiry`` in unix seconds, ``implied_vol``). The body is checked in three layers,
each answering 400 with the offending field:
1. shape and types (pydantic: unknown keys, wrong types, NaN/∞, sizes of lists);
2. references: assets and chains must be configured (``PositionMarkets``), one perp per
   asset, one option line per (asset, chain, right, strike, expiry);
3. the margin model's own rules (``margin.model.Position``: tiers increasing, rates in (0, 1],
   entry price ≥ 0; options: strike > 0, expiry in the future, implied_vol in (0, 10]), so
   nothing the engine would reject is ever stored.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from daemon.api.errors import REQUEST_TIMEOUT, ApiError, BadRequest
from daemon.config.model import Config
from margin.model import MarginInputError, Position, Tier
from margin.options import MAX_IMPLIED_VOL, OptionPosition, Right

MAX_POSITIONS = 256
"""Positions per account in one PUT (one per asset, so far more than any deployment prices)."""
MAX_TIERS = 32
MAX_NAME_CHARS = 64
"""Asset and chain names are ``VARCHAR(64)`` in the store."""
MAX_ABS_SIZE = 1e15
"""|size| in asset units; beyond it a value is a typo (or an attack), not a position."""
MAX_PRICE = 1e15
"""Entry price and tier bounds (USD)."""
MAX_NUMBER_CHARS = 64
MAX_EXPIRY = 2**40
"""Unix seconds (year ~36,800): a larger expiry is a unit mistake (milliseconds)."""
MALFORMED_BODY = "malformed body (framing, length or content encoding)"
SIZE_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
PRICE_PATTERN = r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"

_SIGNED_DECIMAL = re.compile(SIZE_PATTERN)
_UNION_TAGS = ("float", "str", "perp", "option")
_NUMBER_PROBLEM = (
    f"must be a number or a decimal string such as -1.5 (at most {MAX_NUMBER_CHARS} characters)"
)
_Strict = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True)
_Number = float | Annotated[str, Field(max_length=MAX_NUMBER_CHARS)]


@dataclass(frozen=True, slots=True)
class PositionMarkets:
    """What positions may refer to: the configured assets and chains."""

    assets: frozenset[str]
    chains: frozenset[str]
    venues: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: Config) -> PositionMarkets:
        """Assets priced or held (``assets[].symbol``, ``tokens[].asset``), chain and venue
        names."""
        assets = {a.symbol for a in config.assets} | {t.asset for t in config.tokens}
        return cls(
            assets=frozenset(assets),
            chains=frozenset(c.name for c in config.chains),
            venues=frozenset(v.name for v in config.venues),
        )


class TierBody(BaseModel):
    """One slice of a maintenance-margin schedule."""

    model_config = _Strict
    up_to: float | None = None
    rate: float


class PositionBody(BaseModel):
    """One perp position as posted."""

    model_config = _Strict
    kind: Literal["perp"] = "perp"
    asset: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    chain: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    size: _Number
    entry_price: _Number
    mmr_tiers: list[TierBody] = Field(min_length=1, max_length=MAX_TIERS)


class OptionBody(BaseModel):
    """One option line as posted (``size`` signed, in units of the underlying)."""

    model_config = _Strict
    kind: Literal["option"]
    asset: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    chain: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    size: _Number
    right: Right
    strike: _Number
    expiry: int = Field(ge=0, le=MAX_EXPIRY)
    implied_vol: _Number


def _kind(item: Any) -> str:
    """The item's ``kind`` (``perp`` when absent) for the tagged union below."""
    kind = item.get("kind", "perp") if isinstance(item, dict) else getattr(item, "kind", "perp")
    return str(kind)


Item = Annotated[
    Annotated[PositionBody, Tag("perp")] | Annotated[OptionBody, Tag("option")],
    Discriminator(_kind),
]


class PositionsBody(BaseModel):
    """The whole body: the account's complete set of positions and options."""

    model_config = _Strict
    positions: list[Item] = Field(max_length=MAX_POSITIONS)


@dataclass(frozen=True, slots=True)
class PostedPositions:
    """A validated body: perps and option lines."""

    positions: list[Position]
    options: list[OptionPosition]


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The whole body, within ``timeout_s`` (408 otherwise) and well-framed (400 otherwise)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            REQUEST_TIMEOUT,
            f"the body did not arrive within {timeout_s:g} s",
            close_connection=True,
        ) from None
    except (HttpProcessingError, web.RequestPayloadError):
        # Bad chunked framing and the like; the parser's own message quotes raw bytes.
        raise BadRequest(None, MALFORMED_BODY) from None


def parse_positions(
    account: str, body: bytes, markets: PositionMarkets, *, now: float
) -> PostedPositions:
    """Validate a PUT body into ``account``'s positions (``BadRequest`` on the first problem);
    ``now`` (unix seconds) is what an option's expiry must be after."""
    try:
        parsed = PositionsBody.model_validate_json(body)
    except ValidationError as exc:
        raise _bad_body(exc) from None
    seen: set[str] = set()
    lines: set[tuple[str, str, Right, float, int]] = set()
    out: list[Position] = []
    options: list[OptionPosition] = []
    for i, item in enumerate(parsed.positions):
        where = f"positions[{i}]"
        if item.asset not in markets.assets:
            raise BadRequest(f"{where}.asset", _not_configured("asset", markets.assets))
        if item.chain not in markets.chains:
            raise BadRequest(f"{where}.chain", _not_configured("chain", markets.chains))
        if isinstance(item, OptionBody):
            option = _option(account, item, where, now)
            if option.key in lines:
                raise BadRequest(
                    where, "one line per (asset, chain, right, strike, expiry): listed twice"
                )
            lines.add(option.key)
            options.append(option)
            continue
        if item.asset in seen:
            raise BadRequest(f"{where}.asset", "one position per asset: this asset is listed twice")
        seen.add(item.asset)
        out.append(_perp(account, item, where))
    return PostedPositions(positions=out, options=options)


def _perp(account: str, item: PositionBody, where: str) -> Position:
    size = _number(item.size, f"{where}.size", low=-MAX_ABS_SIZE, high=MAX_ABS_SIZE)
    entry = _number(item.entry_price, f"{where}.entry_price", low=0.0, high=MAX_PRICE)
    tiers = []
    for j, tier in enumerate(item.mmr_tiers):
        if tier.up_to is not None and tier.up_to > MAX_PRICE:
            raise BadRequest(f"{where}.mmr_tiers[{j}].up_to", f"must be at most {MAX_PRICE:g}")
        tiers.append(Tier(rate=tier.rate, up_to=tier.up_to))
    try:
        return Position(
            account=account,
            asset=item.asset,
            chain=item.chain,
            size=size,
            entry_price=entry,
            mmr_tiers=tuple(tiers),
        )
    except MarginInputError as exc:
        problem = str(exc).removeprefix(f"position {account}/{item.asset}").lstrip(": ")
        raise BadRequest(f"{where}.mmr_tiers", problem) from None


def _option(account: str, item: OptionBody, where: str, now: float) -> OptionPosition:
    size = _number(item.size, f"{where}.size", low=-MAX_ABS_SIZE, high=MAX_ABS_SIZE)
    strike = _number(item.strike, f"{where}.strike", low=-MAX_PRICE, high=MAX_PRICE)
    if strike <= 0:
        raise BadRequest(f"{where}.strike", "must be > 0")
    vol = _number(item.implied_vol, f"{where}.implied_vol", low=0.0, high=MAX_IMPLIED_VOL)
    if vol <= 0:
        raise BadRequest(f"{where}.implied_vol", f"must be > 0 and at most {MAX_IMPLIED_VOL:g}")
    if item.expiry <= now:
        raise BadRequest(f"{where}.expiry", f"is in the past (unix seconds; now is {int(now)})")
    return OptionPosition(
        account=account,
        asset=item.asset,
        chain=item.chain,
        size=size,
        right=item.right,
        strike=strike,
        expiry=item.expiry,
        implied_vol=vol,
    )


def _number(value: float | str, field: str, *, low: float, high: float) -> float:
    """A JSON number or a decimal string as a finite float within ``[low, high]``."""
    if isinstance(value, str):
        if not _SIGNED_DECIMAL.fullmatch(value):  # .match with $ passes a final newline
            raise BadRequest(field, _NUMBER_PROBLEM)
        number = float(Decimal(value))
    else:
        number = value
    if not math.isfinite(number) or not low <= number <= high:
        raise BadRequest(field, f"must be a finite number from {low:g} to {high:g}")
    return number


def _not_configured(what: str, names: frozenset[str]) -> str:
    return f"names no configured {what}; one of {', '.join(sorted(names))}"


def _bad_body(exc: ValidationError) -> BadRequest:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return BadRequest(None, "the body is not valid JSON")
    loc = first["loc"]
    if first["type"] == "union_tag_invalid":
        return BadRequest(f"{_dotted(loc)}.kind", "must be perp or option")
    if any(part in _UNION_TAGS or str(part).startswith("constrained-") for part in loc):
        return BadRequest(_dotted(loc), _NUMBER_PROBLEM)
    return BadRequest(_dotted(loc), first["msg"])


def _dotted(loc: tuple[int | str, ...]) -> str | None:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or part.startswith("constrained-"):
            continue  # pydantic names union members in the path
        else:
            out += f".{part}" if out else part
    return out or None
