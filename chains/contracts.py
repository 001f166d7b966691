"""Compiled contracts the product runs, read from the package's own ``chains/artifacts``.

Today that is the Multicall3 runtime the deploy-less reader injects with an ``eth_call`` state
override (``chains.multicall``). The artifacts are produced by ``scripts/build-contracts.mjs``
(``make contracts``) and travel in the wheel as package data, read through
``importlib.resources``: nothing here depends on a checkout. The test/demo fixtures live in
``devnet/artifacts`` (``devnet.contracts``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

ARTIFACT_FOLDER = "artifacts"  # beside the modules of the package that owns the artifacts


class ArtifactNotFound(FileNotFoundError):
    """No compiled artifact exists for the requested contract name."""

    def __init__(self, name: str, where: str) -> None:
        self.name = name
        super().__init__(
            f"no compiled artifact for contract {name!r} in {where}; "
            "run `make contracts` (node scripts/build-contracts.mjs)"
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract: its ABI, creation code and runtime code."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes


def artifact_file(package: str, name: str) -> Traversable:
    """Where ``<package>/artifacts/<name>.json`` is, installed or in a checkout."""
    return files(package) / ARTIFACT_FOLDER / f"{name}.json"


def read_artifact(package: str, name: str) -> Artifact:
    """Parse ``<package>/artifacts/<name>.json``; ``ArtifactNotFound`` when there is none."""
    try:
        raw = json.loads(artifact_file(package, name).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactNotFound(name, f"{package}/{ARTIFACT_FOLDER}") from exc
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
    )


@functools.cache
def load_artifact(name: str) -> Artifact:
    """A product contract from ``chains/artifacts`` (cached; treat the result as read-only)."""
    return read_artifact(__package__ or "chains", name)


def multicall3_runtime() -> bytes:
    """Runtime code of Multicall3, injected at its canonical address by the state-override
    reader when a chain has no deployed Multicall3 (``use_state_override``)."""
    return load_artifact("Multicall3").deployed_bytecode
