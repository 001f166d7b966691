"""EVM addresses: the one definition of what crossmargin accepts as an address.

Everything that takes an address from outside (config, API paths and parameters, CLI options)
goes through ``normalize_address``. The match is exact: ``\\A…\\Z``, not ``^…$``, because
Python's ``$`` also matches before a final newline, and ``"0x…\\n"`` would then become a second
identity of the same account (stored apart, read from no chain).
"""

from __future__ import annotations

import re

ADDRESS_PATTERN = r"\A0x[0-9a-fA-F]{40}\Z"
"""A 0x-prefixed 20-byte hex address in any case, and nothing else (Python ``re``)."""
JSON_SCHEMA_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
"""The same rule for JSON Schema / OpenAPI (ECMA-262, where ``$`` is the end of the input)."""
JSON_SCHEMA_LOWER_ADDRESS_PATTERN = r"^0x[0-9a-f]{40}$"
"""How crossmargin writes addresses back: lower-case."""
ADDRESS_PROBLEM = "must be a 0x-prefixed 20-byte hex address"

_ADDRESS = re.compile(ADDRESS_PATTERN)


def is_address(value: object) -> bool:
    """Whether ``value`` is a string that is exactly an address (any hex case)."""
    return isinstance(value, str) and _ADDRESS.match(value) is not None


def normalize_address(value: str) -> str:
    """``value`` lower-cased; ``ValueError`` (saying what an address is) unless it is one."""
    if not is_address(value):
        raise ValueError(ADDRESS_PROBLEM)
    return value.lower()


def lower_address(address: str) -> str:
    """``address`` lower-cased, the very same string when it already is: an account's one
    string is then shared by the config, the watchers, the engine and the store's rows
    instead of a copy per component (~90 bytes each at a million accounts)."""
    return address if address.islower() else address.lower()
