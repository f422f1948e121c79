"""A real Prometheus (the machine's package) scraping the example services: every dashboard
query and alert expression returns data with the labels it promises, and alerts go pending."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from devenv import MCPClient, MemoryCache, ToolError, create_app, default_registry
from devenv.stack.observe import RULES, start_prometheus, stop_prometheus
from devenv.testing import free_port, serve_in_thread

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "components" / "monitoring"
DASHBOARD = json.loads((MONITORING / "devenv-dashboard.json").read_text())
ALERTS = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
SERVICES = ("jd-classifier", "content-classifier", "file-system", "notifications", "inbox-agent")
RATE_WINDOW = "30s"  # what Grafana's $__rate_interval is here; Prometheus scrapes every second


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus not found on PATH; .ci/run installs it (apt-get install prometheus)")
        pytest.skip("prometheus not found on PATH (apt-get install prometheus)")
    return binary


def query(url: str, expr: str) -> list[dict]:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]["result"]


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """The five example services on free ports, some calls of every kind, and Prometheus scraping them."""
    binary = _prometheus_binary()
    root = tmp_path_factory.mktemp("observed")
    for name in ("vault", "unsorted"):
        (root / name).mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("VAULT_ROOT", str(root / "vault"))
    patch.setenv("UNSORTED_ROOT", str(root / "unsorted"))
    registry = default_registry()
    with ExitStack() as stack:
        stack.callback(patch.undo)
        urls = {}
        for name in SERVICES:
            registry.get(name).cache = MemoryCache()
            urls[name] = stack.enter_context(serve_in_thread(create_app(registry.get(name))))
            patch.setenv("DEVENV_URL_" + name.upper().replace("-", "_"), urls[name])
        # "ghost": a target where nothing listens, as a crashed service would look
        targets = {**urls, "ghost": f"http://127.0.0.1:{free_port()}"}
        prometheus = start_prometheus(targets, root / "state", interval="1s", binary=binary)
        stack.callback(stop_prometheus, root / "state")
        scrapes = _wait_scraped(prometheus.url, len(targets), at_least=2)  # counters seen at 0 first
        with MCPClient(mode="http") as client:
            for _ in range(3):  # the second and third are cache hits
                client.call("jd-classifier/find_category", {"query": "11"})
            client.call("content-classifier/classify", {"text": "tax return", "top_k": 1})
            with pytest.raises(ToolError):
                client.call("file-system/read_file", {"path": "no such file.txt"})
        jd = urls["jd-classifier"]
        assert httpx.post(f"{jd}/tools/not_a_tool", json={}).status_code == 404
        assert httpx.post(f"{jd}/mcp", json={}, headers={"origin": "http://evil.example"}).status_code == 403
        _wait_scraped(prometheus.url, len(targets), at_least=scrapes + 3)  # and then with the calls
        yield prometheus.url, urls


def _wait_scraped(url: str, targets: int, at_least: int, timeout: float = 60) -> int:
    """Wait until Prometheus has scraped every target ``at_least`` times; the count it reached."""
    deadline = time.monotonic() + timeout
    while True:
        counts = query(url, 'count_over_time(up{job="devenv"}[10m])')
        reached = min((int(float(r["value"][1])) for r in counts), default=0)
        if len(counts) == targets and reached >= at_least:
            return reached
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Prometheus scraped {len(counts)} of {targets} targets {reached} times in {timeout} s"
            )
        time.sleep(0.25)


def test_every_target_is_scraped_as_job_devenv_with_the_service_label(observed):
    url, urls = observed
    up = {r["metric"]["service"]: r["value"][1] for r in query(url, 'up{job="devenv"}')}
    assert up == {**{name: "1" for name in urls}, "ghost": "0"}


def test_the_service_target_label_does_not_rename_devenv_service(observed):
    url, _ = observed
    assert query(url, 'count({exported_service!=""})') == []
    pairs = {(r["metric"]["service"], r["metric"]["devenv_service"]) for r in query(url, "mcp_requests_total")}
    assert ("jd-classifier", "jd-classifier") in pairs and all(a == b for a, b in pairs)


def test_every_series_exists_at_zero_before_any_call(observed):
    url, _ = observed
    notes = query(url, 'mcp_requests_total{devenv_service="notifications",status="tool_error"}')
    assert notes and all(r["value"][1] == "0" for r in notes)  # no call yet, and still there
    reasons = {
        r["metric"]["reason"] for r in query(url, 'devenv_rejected_requests_total{devenv_service="inbox-agent"}')
    }
    assert reasons == {"unauthorized", "host", "origin", "rate_limited", "overloaded"}


def _panel_queries():
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            yield pytest.param(target, id=f"{panel['title']} {target['refId']}")


@pytest.mark.parametrize("target", list(_panel_queries()))
def test_every_dashboard_query_returns_data_with_its_legend_labels(observed, target):
    url, _ = observed
    expr = target["expr"].replace("$__rate_interval", RATE_WINDOW)
    result = query(url, expr)
    assert result, f"no data for {expr}"
    for label in re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]):
        assert all(label in r["metric"] for r in result), (label, result[:2])
    values = [float(r["value"][1]) for r in result]
    assert any(math.isfinite(v) for v in values), f"{expr}: only NaN, so the calls made were not seen"


def test_the_dashboard_queries_see_the_calls_made(observed):
    url, _ = observed
    w = RATE_WINDOW

    def one(expr: str, **labels: str) -> float:
        rows = [r for r in query(url, expr) if all(r["metric"].get(k) == v for k, v in labels.items())]
        assert len(rows) == 1, (expr, labels, rows)
        return float(rows[0]["value"][1])

    assert one(f"sum by (devenv_service) (increase(devenv_cache_lookups_total[{w}]))", devenv_service="jd-classifier")
    hit_ratio = (
        f'sum by (devenv_service) (rate(devenv_cache_lookups_total{{result="hit"}}[{w}]))'
        f" / sum by (devenv_service) (rate(devenv_cache_lookups_total[{w}]))"
    )
    assert one(hit_ratio, devenv_service="jd-classifier") == pytest.approx(2 / 3)
    errors = f'sum by (devenv_service) (increase(mcp_requests_total{{status="tool_error"}}[{w}]))'
    assert one(errors, devenv_service="file-system") > 0
    unknown = f"sum by (devenv_service) (increase(devenv_unknown_tool_requests_total[{w}]))"
    assert one(unknown, devenv_service="jd-classifier") > 0
    rejected = f"sum by (devenv_service, reason) (increase(devenv_rejected_requests_total[{w}]))"
    assert one(rejected, devenv_service="jd-classifier", reason="origin") > 0


def _quantity(expr: str) -> str:
    """An alert's expression without its threshold: what it compares, which always has data."""
    return re.split(r"\s(?:>|==)\s", expr.strip())[0]


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_every_alert_expression_evaluates_with_the_labels_its_annotations_use(observed, alert):
    url, _ = observed
    query(url, alert["expr"])  # valid against real data (empty: nothing is wrong yet, or pending)
    result = query(url, _quantity(alert["expr"]))
    assert result, f"no data for {_quantity(alert['expr'])}"
    used = set(re.findall(r"\$labels\.(\w+)", json.dumps(alert["annotations"])))
    for row in result:
        assert used <= set(row["metric"]), (used, row["metric"])


def test_the_rules_load_and_evaluate_cleanly(observed):
    url, _ = observed
    deadline = time.monotonic() + 15
    while True:
        rules = [r for g in httpx.get(f"{url}/api/v1/rules").json()["data"]["groups"] for r in g["rules"]]
        if {r["health"] for r in rules} == {"ok"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(r["name"] for r in rules) == sorted(a["alert"] for a in ALERTS)
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]


def test_a_failing_tool_and_a_stopped_service_make_alerts_pending(observed):
    url, urls = observed
    # file-system's one call failed: 100% errors, pending for its 2 minutes.
    alerts = _alerts_soon(url, lambda a: a["labels"]["alertname"] == "DevenvHighErrorRatio")
    assert {a["labels"]["devenv_service"] for a in alerts} == {"file-system"}
    assert all(a["state"] == "pending" for a in alerts)
    # The target nobody answers on is down: pending for its minute; the live ones are not.
    down = _alerts_soon(url, lambda a: a["labels"]["alertname"] == "DevenvServiceDown")
    assert [a["labels"]["service"] for a in down] == ["ghost"]
    assert down[0]["state"] == "pending"


def _alerts_soon(url: str, wanted, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        alerts = [a for a in httpx.get(f"{url}/api/v1/alerts").json()["data"]["alerts"] if wanted(a)]
        if alerts or time.monotonic() > deadline:
            return alerts
        time.sleep(0.5)


def test_the_rule_files_agree_and_pass_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found on PATH; .ci/run installs it (apt-get install prometheus)")
        pytest.skip("promtool not found on PATH (apt-get install prometheus)")
    import subprocess

    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 4 rules found" in check.stdout
    here = Path(__file__).parent
    test = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"], cwd=here, capture_output=True, text=True, timeout=60
    )
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout
    # Each alert has a firing case there, so a broken threshold cannot pass unnoticed.
    cases = yaml.safe_load((here / "rules_test.yml").read_text())["tests"]
    firing = {t["alertname"] for c in cases for t in c["alert_rule_test"] if t["exp_alerts"]}
    quiet = {t["alertname"] for c in cases for t in c["alert_rule_test"] if not t["exp_alerts"]}
    assert firing == quiet == {a["alert"] for a in ALERTS}
