"""The metric names the Grafana dashboard and the Prometheus rules use, and the ones the daemon
exports (its ``Metrics`` registry, or a real ``/metrics`` scrape)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import yaml
from prometheus_client.parser import text_string_to_metric_families

from daemon.metrics import Metrics
from devnet import REPO_ROOT

GRAFANA = REPO_ROOT / "deploy" / "grafana" / "crossmargin.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.test.yml"
PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus itself makes for every target (not the daemon's)."""
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_QUOTED = re.compile(r"`([^`]*)`")
_OURS = re.compile(r"\bcrossmargin_[a-z0-9_]+\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the Grafana dashboard's panels."""
    dashboard = json.loads(GRAFANA.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_expressions() -> list[str]:
    """Every alert expression, and the queries its annotations run."""
    rules = yaml.safe_load(ALERTS.read_text())
    out = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            out.append(rule["expr"])
            for text in rule.get("annotations", {}).values():
                out += _QUOTED.findall(text)  # the queries an annotation template runs
    return out


def metric_names(expressions: Iterable[str]) -> set[str]:
    """Metric names in ``expressions``: ``crossmargin_*`` ones, and any other selector's."""
    names: set[str] = set()
    for expr in expressions:
        names.update(_OURS.findall(expr))
        names.update(_SELECTOR.findall(expr))
    return names


def registry_names(metrics: Metrics) -> set[str]:
    """Every sample name the daemon's registry exposes (``_total``, ``_bucket`` … included)."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def scraped_names(text: str) -> set[str]:
    """Sample names present in a ``/metrics`` scrape."""
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}
