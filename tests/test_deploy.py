"""What ships in deploy/: Prometheus alert rules (checked and unit-tested with promtool) and a
Grafana dashboard, both naming only metrics the service exports.

promtool comes with Debian's `prometheus` package; without it the promtool test is skipped
with the reason, unless `MIRO_TEST_REQUIRE_PROMTOOL=1` (as `.ci/run` sets): then it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from miro_bridge.metrics import Metrics

DEPLOY = Path(__file__).parents[1] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
#: A metric name where a PromQL expression selects a series: `name{` or `name[`.
_SELECTED = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_NOT_METRICS = frozenset({"by", "on", "without", "ignoring", "group_left", "group_right"})


def exported_names() -> set[str]:
    """Every series name the service's /metrics can hold."""
    metrics = Metrics()
    metrics.watch_actors(list)
    names = set()
    for family in metrics.registry.collect():
        match family.type:
            case "counter":
                names.add(f"{family.name}_total")
            case "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
            case _:
                names.add(family.name)
    return names


def selected_metrics(expression: str) -> set[str]:
    return {name for name in _SELECTED.findall(expression) if name not in _NOT_METRICS}


def test_the_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("MIRO_TEST_REQUIRE_PROMTOOL") == "1":
            pytest.fail("MIRO_TEST_REQUIRE_PROMTOOL=1, but promtool is not installed")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_firing_and_a_quiet_case_in_its_unit_tests() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    cases = yaml.safe_load((ALERTS.parent / "alerts_test.yml").read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for rule in rules:
        mine = [check for check in checks if check["alertname"] == rule["alert"]]
        assert any(check["exp_alerts"] for check in mine), rule["alert"]
        assert any(not check["exp_alerts"] for check in mine), rule["alert"]
    assert {rule["alert"] for rule in rules} == {
        "MiroBridgeDeadLettersRising",
        "MiroBridgeQueueNotDraining",
        "MiroBridgeActorRestarts",
        "MiroBridgeMiroRateLimited",
        "MiroBridgeHigh5xxRate",
        "MiroBridgeTokenRefreshFailures",
    }


def test_alerts_and_dashboard_name_only_metrics_the_service_exports() -> None:
    exported = exported_names()
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    for rule in rules:
        named = selected_metrics(rule["expr"])
        assert named, rule["alert"]
        assert named <= exported, (rule["alert"], named - exported)
    dashboard: dict[str, Any] = json.loads((DEPLOY / "grafana" / "miro-bridge.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) > 20
    named = set().union(*(selected_metrics(e) for e in expressions))
    assert named <= exported, named - exported
    assert {"jobs_dead_lettered_total", "token_refreshes_total", "actor_restarts_total"} <= named
