"""The Grafana dashboard and the Prometheus alert rules name only metrics the daemon exports,
and the rules pass ``promtool`` (syntax and their unit tests in ``alerts.test.yml``)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from daemon.metrics import Metrics
from tests.e2e.deploy_metrics import (
    ALERT_TESTS,
    ALERTS,
    GRAFANA,
    PROMETHEUS_OWN,
    dashboard_expressions,
    metric_names,
    registry_names,
    rule_expressions,
)

PROMTOOL_TIMEOUT_S = 60.0
REQUIRED_ALERTS = {
    "CrossmarginChainLagging",
    "CrossmarginOracleTripped",
    "CrossmarginOracleStale",
    "CrossmarginNoEngineCycle",
    "CrossmarginRpcEndpointParked",
    "CrossmarginLiquidatableJump",
    "CrossmarginStoreWritesFailing",
    "CrossmarginEventsPilingUp",
}


def test_every_metric_of_the_dashboard_and_the_rules_is_one_the_daemon_exports() -> None:
    exported = registry_names(Metrics())
    for source, expressions in (
        ("grafana", dashboard_expressions()),
        ("alerts", rule_expressions()),
    ):
        named = metric_names(expressions)
        assert named, source
        unknown = named - exported - PROMETHEUS_OWN
        assert not unknown, f"{source} names metrics the daemon does not export: {unknown}"


def test_the_dashboard_covers_what_operators_watch_and_imports_cleanly() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    named = metric_names(dashboard_expressions())
    for needed in (
        "crossmargin_chain_lag_seconds",
        "crossmargin_reorgs_total",
        "crossmargin_rpc_errors_total",
        "crossmargin_oracle_status",
        "crossmargin_accounts",
        "crossmargin_cycle_seconds_bucket",
        "crossmargin_block_to_publish_seconds_bucket",
        "crossmargin_store_write_failing",
        "crossmargin_events_pending",
    ):
        assert needed in named, needed


def test_the_alert_rules_pass_promtool() -> None:
    import yaml

    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert alerts >= REQUIRED_ALERTS
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool is not installed (Debian package prometheus; `make test` installs it "
            "where apt-get can): the rule files were not validated"
        )
    for args in (["check", "rules", ALERTS.name], ["test", "rules", ALERT_TESTS.name]):
        proc = subprocess.run(
            [promtool, *args],
            cwd=ALERTS.parent,
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
            check=False,
        )
        assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
