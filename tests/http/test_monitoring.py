"""Monitoring (monitoring/, docs/monitoring.md): the database's figures on /metrics, the
alert rules and their promtool unit tests, and the Grafana dashboard, whose every metric
must be one a live receiver really exports."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from receiver import figures
from tests.helpers import rec, upsert
from tests.http.outcomes import server_error_statuses
from tests.http_helpers import Endpoint, counting_listener, metric, receiver_config, serving

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (Debian: apt-get install prometheus; .ci/run does)"
DATABASE_GAUGES = (
    "optiqoflow_refused_waiting",
    "optiqoflow_worst_lag_seconds",
    "optiqoflow_log_partitions_ahead_days",
)


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    exprs = [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]
    for var in _dashboard()["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


# --- which metric names an expression uses ---------------------------------------------------

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana label_values query) reads."""
    if m := re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][\w:]*).*\)\s*", expr, re.S):
        return {m.group(1)}
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors
    expr = _GROUPING.sub(" ", expr)  # label lists
    expr = re.sub(r"\$\w+", " ", expr)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if expr[m.end() :].lstrip().startswith("(") or m.group().lower() in _KEYWORDS:
            continue  # a function or an operator
        names.add(m.group())
    return names


def test_metric_names_of_an_expression() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, status) (rate(a_bucket{job="$job", x=~"b|c"}'
        "[$__rate_interval]))) / on (instance) group_left(d) b_total offset 5m > bool 1e3"
    ) == {"a_bucket", "b_total"}
    assert metric_names('label_values(up{job="$job"}, instance)') == {"up"}
    assert metric_names("up == 0 unless on (job) c") == {"up", "c"}


def exported_names(text: str) -> tuple[set[str], set[str]]:
    """(every name a query may use, the metric families) of a /metrics text: counters
    with their _total, histograms as _bucket/_sum/_count, gauges as they are."""
    usable: set[str] = set()
    families: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        if name.endswith("_created"):
            continue  # prometheus_client's creation times
        families.add(name)
        if kind == "histogram":
            usable |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif kind == "counter":
            usable.add(name if name.endswith("_total") else f"{name}_total")
        else:
            usable.add(name)
    return usable, families


# --- the database's figures on /metrics ------------------------------------------------------


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def _scrape(ep: Endpoint) -> str:
    reply = await ep.get("/metrics")
    assert reply.status == 200
    assert isinstance(reply.body, str)
    return reply.body


async def test_metrics_export_the_database_figures(db_dsn: str, tenant: str) -> None:
    async with serving(receiver_config(db_dsn)) as ep:
        refused = await ep.post(upsert(tenant, rec(), table="no_such_source_table"))
        assert refused.status == 422
        changed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
        applied = await ep.post(upsert(tenant, rec(None, _iso(changed), title="a minute old")))
        assert applied.status == 200 and applied.body["status"] == "applied"
        text = await _scrape(ep)
    assert metric(text, "optiqoflow_refused_waiting") == 1
    assert 59.9 <= metric(text, "optiqoflow_worst_lag_seconds") < 120
    with psycopg.connect(db_dsn) as c:
        row = c.execute("SELECT optiqoflow.health_metrics()").fetchone()
    assert row is not None
    assert (
        metric(text, "optiqoflow_log_partitions_ahead_days") == row[0]["log_partitions_ahead_days"]
    )
    # one gauge each, no label (no tenant anywhere)
    for name in DATABASE_GAUGES:
        assert len([line for line in text.splitlines() if line.startswith(name)]) == 1
    assert tenant not in text


async def test_a_scrape_storm_asks_the_database_once(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("CREATE SEQUENCE figures_asked")
    monkeypatch.setattr(figures, "MAX_AGE", 3600.0)  # the storm is within one MAX_AGE
    monkeypatch.setattr(
        figures,
        "FIGURES_SQL",
        "SELECT (optiqoflow.health_metrics() || jsonb_build_object("
        "'asked', nextval('public.figures_asked')))::text",
    )
    async with serving(receiver_config(db_dsn)) as ep:
        texts = await asyncio.gather(*(_scrape(ep) for _ in range(20)))
    assert all("optiqoflow_refused_waiting 0.0" in text for text in texts)
    with psycopg.connect(db_dsn) as c:
        row = c.execute("SELECT last_value FROM public.figures_asked").fetchone()
    assert row == (1,)


async def test_metrics_without_the_figures_when_the_database_is_down() -> None:
    async with (
        counting_listener() as (dsn, attempts),
        serving(receiver_config(dsn, pool_timeout=1.0)) as ep,
    ):
        text = await _scrape(ep)
    assert attempts  # it did ask
    assert "optiqoflow_deliveries_total" in text
    for name in DATABASE_GAUGES:
        assert name not in text


async def test_metrics_without_the_figures_when_the_database_is_not_migrated(
    empty_db_dsn: str,
) -> None:
    async with serving(receiver_config(empty_db_dsn)) as ep:
        text = await _scrape(ep)
    assert "optiqoflow_db_pool_size" in text
    for name in DATABASE_GAUGES:
        assert name not in text


# --- every metric the rules and the dashboard use is exported --------------------------------


async def test_rules_and_dashboard_use_only_exported_metrics(db_dsn: str) -> None:
    async with serving(receiver_config(db_dsn)) as ep:
        await ep.post(upsert(str(uuid.uuid4()), rec()))
        text = await _scrape(ep)
    usable, families = exported_names(text)
    assert set(DATABASE_GAUGES) <= families
    usable.add("up")  # Prometheus' own, per scrape target
    for source, exprs in (
        ("alerts.yml", [r["expr"] for r in _rules()]),
        ("dashboard", _dashboard_exprs()),
    ):
        for expr in exprs:
            unknown = metric_names(expr) - usable
            assert not unknown, f"{source}: {expr!r} uses {sorted(unknown)}, not exported"
    # and the dashboard plots every metric the receiver exports
    used = set().union(*(metric_names(e) for e in _dashboard_exprs()))
    unplotted = {f for f in families if not any(u.startswith(f) for u in used)}
    assert not unplotted, f"exported but not on the dashboard: {sorted(unplotted)}"


def test_the_5xx_alert_counts_exactly_the_outcomes_answered_5xx() -> None:
    (rule,) = [r for r in _rules() if r["alert"] == "OptiqoflowServerErrors"]
    (regex,) = re.findall(r'status=~"([^"]+)"', rule["expr"])
    assert set(regex.split("|")) == server_error_statuses()
    dashboard = "\n".join(_dashboard_exprs())
    assert f'status=~"{regex}"' in dashboard


def test_every_rule_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in _rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires in a test"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} is never quiet"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", RULES.name], ["test", "rules", RULE_TESTS.name]):
        done = subprocess.run(
            [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    """The dashboard's queries, with Grafana's variables filled in, as recording rules:
    `promtool check rules` parses each."""
    exprs = [e for e in _dashboard_exprs() if not e.startswith("label_values(")]
    filled = [
        e.replace("$__rate_interval", "5m").replace("$job", "optiqoflow").replace("$instance", ".*")
        for e in exprs
    ]
    rules = [{"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(filled)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_is_grafana_json() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    names = {var["name"] for var in dash["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= names
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job="$job"' in target["expr"], (panel["title"], target["expr"])
