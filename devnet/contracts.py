"""Compiled Solidity test/demo fixtures (tokens, feeds, pools), read from ``devnet/artifacts``,
and the product's own contracts (``chains.contracts``) by the same name-based look-up."""

from __future__ import annotations

import functools

from chains.contracts import Artifact, ArtifactNotFound, read_artifact
from chains.contracts import load_artifact as load_product_artifact


@functools.cache
def load_artifact(name: str) -> Artifact:
    """A fixture from ``devnet/artifacts``, else a product contract such as Multicall3
    (cached; treat the result as read-only)."""
    try:
        return read_artifact(__package__ or "devnet", name)
    except ArtifactNotFound:
        return load_product_artifact(name)
