"""Under ``make mutate`` (``CROSSMARGIN_MUTATION=1``) every margin test starts with an empty
``compile_tiers`` cache: mutmut forks each mutant's run from a process whose cache already
holds the schedules, so a mutant of ``compile_schedule`` would otherwise never run."""

from __future__ import annotations

import os

import pytest

from margin.tiers import compile_tiers

MUTATION = os.environ.get("CROSSMARGIN_MUTATION") == "1"


@pytest.fixture(autouse=MUTATION)
def _fresh_tier_cache() -> None:
    compile_tiers.cache_clear()
