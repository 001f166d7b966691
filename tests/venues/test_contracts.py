"""The protocol contracts venues are tested against: npm artifacts and the vendored build."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devnet import REPO_ROOT
from devnet.vendor import (
    VendorArtifactNotFound,
    aave_artifact,
    vendor_artifact,
)

REPO = REPO_ROOT


def test_vendor_artifacts_are_up_to_date() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is required to check vendor artifacts: run `make install`")
    result = subprocess.run(
        [node, "scripts/build-vendor-contracts.mjs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_morpho_artifacts_come_from_the_pinned_package_and_compiler() -> None:
    morpho = vendor_artifact("morpho-blue", "Morpho")
    names = {entry.get("name") for entry in morpho.abi}
    assert {"liquidate", "idToMarketParams", "position", "market", "accrueInterest"} <= names
    text = (REPO / "contracts/vendor/morpho-blue/Morpho.json").read_text()
    assert '"package": "@morpho-org/morpho-blue@1.0.0"' in text
    assert '"solcVersion": "0.8.19+commit.7dd6d404.Emscripten.clang"' in text
    with pytest.raises(VendorArtifactNotFound, match="make contracts"):
        vendor_artifact("morpho-blue", "NoSuchContract")


def test_aave_pool_artifact_links_its_logic_libraries() -> None:
    pool = aave_artifact("Pool")
    assert set(pool.links) == {
        "BorrowLogic",
        "BridgeLogic",
        "EModeLogic",
        "FlashLoanLogic",
        "LiquidationLogic",
        "PoolLogic",
        "SupplyLogic",
    }
    libraries = {name: f"0x{i + 1:040x}" for i, name in enumerate(sorted(pool.links))}
    linked = pool.link(libraries)
    for i, name in enumerate(sorted(pool.links)):
        for offset in pool.links[name]:
            assert linked[offset : offset + 20] == (i + 1).to_bytes(20, "big")
    assert aave_artifact("PoolConfigurator").links.keys() == {"ConfiguratorLogic"}
    with pytest.raises(Exception, match="needs library addresses for ConfiguratorLogic"):
        aave_artifact("PoolConfigurator").link({})
