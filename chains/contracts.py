"""Compiled Solidity test/demo contracts, read from the committed ``contracts/artifacts``.

The artifacts are produced by ``scripts/build-contracts.mjs`` (``make contracts``); a test
fails when one is out of date with its source.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARTIFACT_DIR = Path(__file__).resolve().parent.parent / "contracts" / "artifacts"


class ArtifactNotFound(FileNotFoundError):
    """No compiled artifact exists for the requested contract name."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        super().__init__(
            f"no compiled artifact for contract {name!r} at {path}; "
            "run `make contracts` (node scripts/build-contracts.mjs)"
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract: its ABI, creation code and runtime code."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes


@functools.cache
def load_artifact(name: str) -> Artifact:
    """Load ``contracts/artifacts/<name>.json`` (cached; treat the result as read-only)."""
    path = ARTIFACT_DIR / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactNotFound(name, path) from exc
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
    )
