"""The JSON documents of a stress pass (``POST /v1/stress``, ``crossmargin stress --json``) and
of the grid report (``GET /v1/stress/grid``). Money is a decimal string; a health is ``null``
when infinite (nothing owed); addresses are lower-case (``daemon.documents`` conventions)."""

from __future__ import annotations

from daemon.documents import decimal_text, float_text
from margin.stress import AccountStress, GridReport, StressReport


def _health(value: float) -> float | None:
    """A finite health as a number; ∞ (nothing owed) and NaN (unknown) as ``None``."""
    return value if float_text(value) is not None else None


def account_stress_document(item: AccountStress) -> dict[str, object]:
    """One newly liquidatable account."""
    return {
        "account": item.account.lower(),
        "health_before": _health(item.health_before),
        "health_after": _health(item.health_after),
        "shortfall_after": decimal_text(item.shortfall_after),
    }


def stress_document(report: StressReport) -> dict[str, object]:
    """A stress pass's answer."""
    return {
        "accounts": report.accounts,
        "liquidatable_before": report.liquidatable_before,
        "liquidatable_after": report.liquidatable_after,
        "newly_liquidatable_count": report.newly_liquidatable_count,
        "newly_liquidatable": [account_stress_document(a) for a in report.newly_liquidatable],
        "total_shortfall_after": decimal_text(report.total_shortfall_after),
        "bad_debt_after": decimal_text(report.bad_debt_after),
        "latency_risk_before": report.latency_risk_before,
        "latency_risk_after": report.latency_risk_after,
        "health_unknown": report.health_unknown,
    }


def grid_document(report: GridReport) -> dict[str, object]:
    """The grid report: the book under each price move of one asset."""
    return {
        "asset": report.asset,
        "accounts": report.accounts,
        "liquidatable_before": report.liquidatable_before,
        "points": [
            {
                "move": point.move,
                "liquidatable": point.liquidatable,
                "newly_liquidatable": point.newly_liquidatable,
                "total_shortfall": decimal_text(point.total_shortfall),
                "bad_debt": decimal_text(point.bad_debt),
            }
            for point in report.points
        ],
    }
