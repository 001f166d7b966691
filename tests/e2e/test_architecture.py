"""The README's Architecture table stays true to the tree: every folder it names exists, and
every package of the tree (and of ``daemon/``) is named."""

from __future__ import annotations

import re

from devnet import REPO_ROOT


def _table_folders() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {
        folder.rstrip("/")
        for row in rows
        for folder in re.findall(r"`([a-z_/]+/)`", row.split("|")[1])
    }


def test_every_named_folder_exists() -> None:
    named = _table_folders()
    assert {"core", "chains", "oracles", "margin", "daemon", "tests", "bench"} <= named
    for folder in named:
        assert (REPO_ROOT / folder).is_dir(), f"README names {folder}/, which does not exist"


def test_every_package_is_named() -> None:
    named = _table_folders()
    top = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    daemon = {f"daemon/{p.parent.name}" for p in REPO_ROOT.glob("daemon/*/__init__.py")}
    missing = (top | daemon) - named
    assert not missing, f"README's Architecture table misses {sorted(missing)}"
