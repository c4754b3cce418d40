"""Monitoring that ships as files: deploy/prometheus (alerts, their unit tests, the compose scrape config) and
deploy/grafana, checked with the real tools (Debian's prometheus package: promtool and prometheus, installed by
scripts/ensure-test-tools.sh), and a real Prometheus scraping the running stack and evaluating the alerts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from django.conf import settings
from django.utils import timezone

from drafts.models import SyncTrigger
from drafts.services import draft_count_request_sync
from tests.fixtures.platform import LivePlatform
from tests.fixtures.proxy import free_port
from tests.fixtures.sync import sandbox_tenant, worker_env
from tests.fixtures.worker import Worker
from wxplatform.component.models import Platform

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "wxplatform.json"
TOKEN = "prometheus-scrape-token"
NOT_INSTALLED = "{} is not installed (make test installs Debian's prometheus package with apt where it can)"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(NOT_INSTALLED.format(name))
    return path


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def squash(expr: str) -> str:
    return " ".join(expr.split())


# --- the files, checked with promtool ------------------------------------------------------------------


def test_the_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS_DIR, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}

    assert {rule["alert"] for rule in rules()} == tested


def test_the_compose_scrape_config_passes_promtool_check(tmp_path: Path) -> None:
    # Checked as deployed: alerts.yml next to it, the token file the container's entrypoint writes.
    token = tmp_path / "metrics_token"
    token.write_text(TOKEN)
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert "/tmp/metrics_token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/tmp/metrics_token", str(token)))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")

    result = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_of_the_reference_table_is_in_alerts_yml() -> None:
    readme = (ROOT / "docs" / "reference.md").read_text()
    table = readme[readme.index("| alert | expression |") :].split("\n\n")[0]
    # Cells are split on unescaped pipes; `\|` is a pipe inside an expression.
    cells = [re.split(r"(?<!\\)\|", row) for row in table.splitlines()[2:]]
    documented = [squash(cell[2].strip().strip("`").replace("\\|", "|")) for cell in cells]
    shipped = {squash(rule["expr"]) for rule in rules()}

    assert len(documented) >= 12
    assert [expr for expr in documented if expr not in shipped] == []


def test_alerts_and_dashboard_use_only_series_the_service_exports() -> None:
    exported = (ROOT / "wxplatform" / "core" / "metrics.py").read_text() + (
        ROOT / "wxplatform/console/metrics.py"
    ).read_text()
    used = set(re.findall(r"wxp_[a-z0-9_]+", ALERTS.read_text() + DASHBOARD.read_text()))
    # "wxp_tenants*" and the like in comments name families, not series.
    names = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used if not name.endswith("_")}

    assert len(names) > 15
    assert sorted(name for name in names if f'"{name}"' not in exported) == []


def test_the_grafana_dashboard_and_its_provisioning_fit_together() -> None:
    board = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/wxplatform.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    (datasource,) = datasources
    assert datasource["url"] == "http://prometheus:9090"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert {panel["datasource"]["uid"] for panel in board["panels"]} == {datasource["uid"]}
    assert {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]} == {datasource["uid"]}
    titles = " ".join(panel["title"].lower() for panel in board["panels"])
    for subject in ("syncs", "errcode", "quota", "token refreshes", "pushes", "whitelist"):
        assert subject in titles
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_compose_runs_prometheus_and_grafana_only_under_the_monitoring_profile(tmp_path: Path) -> None:
    compose = tool("docker-compose")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    with (tmp_path / ".env").open("a") as env_file:
        env_file.write("\nPOSTGRES_PASSWORD=compose-check\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([compose, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    checked = run("--profile", "monitoring", "config", "-q")
    assert checked.returncode == 0, checked.stderr
    assert {"prometheus", "grafana"} <= set(run("--profile", "monitoring", "config", "--services").stdout.split())
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {name for name, service in services.items() if "monitoring" in service.get("profiles", [])} == {
        "prometheus",
        "grafana",
    }
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


# --- a real Prometheus scraping the running stack ------------------------------------------------------


class Prometheus:
    def __init__(self, directory: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(ALERTS, directory / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {
                    "job_name": "wxplatform",
                    "metrics_path": "/metrics",
                    "authorization": {"credentials": TOKEN},
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def api(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [alert for alert in self.api("alerts")["alerts"] if alert["labels"]["alertname"] == name]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def prometheus(platform: LivePlatform, settings: Any, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus scraping the live server's /metrics every second with the scrape token."""
    tool("promtool")
    settings.METRICS_TOKEN = TOKEN
    server = Prometheus(tmp_path, platform.url.removeprefix("http://"))
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_the_running_stack_and_the_ticket_alert_fires_when_pushes_stop(
    platform: LivePlatform, prometheus: Prometheus, worker_factory: Callable[..., Worker]
) -> None:
    # The stack: the sandbox pushes a ticket to the live web server, a worker syncs a merchant.
    platform.push_ticket()
    tenant = sandbox_tenant(platform.sandbox, draft_count=4)
    worker_factory(env=worker_env())
    draft_count_request_sync(tenant=tenant, trigger=SyncTrigger.API)

    # The worker's counter reaches Prometheus through the web process's scrape (shared metrics directory).
    prometheus.wait_for(lambda: bool(prometheus.query('sum(wxp_draft_syncs_total{result="changed"}) >= 1')), "a sync")
    assert prometheus.query('up{job="wxplatform"}')[0]["value"][1] == "1"
    age = float(prometheus.query("max(wxp_component_ticket_age_seconds)")[0]["value"][1])
    assert 0 <= age < 60
    # Every rule evaluates cleanly against the real series, and the dashboard's queries are valid PromQL.
    prometheus.wait_for(
        lambda: (
            all(
                r.get("lastEvaluation", "").startswith("20")
                for g in prometheus.api("rules")["groups"]
                for r in g["rules"]
            )
            and all(r["health"] == "ok" for g in prometheus.api("rules")["groups"] for r in g["rules"])
        ),
        "every rule to be evaluated",
    )
    for expr in dashboard_exprs():
        prometheus.query(expr)
    assert prometheus.alerts("WxpNoVerifyTicket") == []

    # Pushes stop: the last ticket arrived 31 minutes ago (the sandbox pushes no more).
    Platform.objects.filter(component_appid=settings.WECHAT_COMPONENT_APPID).update(
        ticket_received_at=timezone.now() - timedelta(minutes=31)
    )

    prometheus.wait_for(
        lambda: [a["state"] for a in prometheus.alerts("WxpNoVerifyTicket")] == ["firing"], "the ticket alert"
    )
    (alert,) = prometheus.alerts("WxpNoVerifyTicket")
    assert alert["labels"]["severity"] == "critical"
    assert float(alert["value"]) > 1800
    # A ticket pushed again clears it.
    platform.push_ticket()
    prometheus.wait_for(lambda: prometheus.alerts("WxpNoVerifyTicket") == [], "the ticket alert to clear")
