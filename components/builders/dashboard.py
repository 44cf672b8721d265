"""Cloud Monitoring dashboard and alert conditions (pure): PromQL over Managed Prometheus.

Metric names:

* vLLM (``vllm/vllm-openai`` 0.10+, the simulator exports the same): ``vllm:request_success_total``,
  ``vllm:time_to_first_token_seconds`` and ``vllm:request_time_per_output_token_seconds`` (each
  request's mean time per output token; the old ``vllm:time_per_output_token_seconds`` is gone),
  ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (0-1; was ``gpu_cache_usage_perc``).
  tests/unit/test_metric_references.py checks every name and label against a recorded real page.
* the bundled endpoint picker (picker/endpoint_picker/selfmetrics.py):
  ``picker_decision_duration_seconds`` (histogram), ``picker_rejected_requests_total{code,reason}``
  (429 shed / rate limited, 503 no endpoints), ``picker_ready_endpoints``,
  ``picker_endpoint_saturation{endpoint}`` (the scheduler's view of each model server); with flow control
  ``picker_flow_queue_size{priority}`` and ``picker_flow_queue_wait_seconds{priority,outcome}``.
* GPUs: DCGM exporter through GKE's managed DCGM metrics, ``DCGM_FI_DEV_GPU_UTIL`` (0-100).

Every query is scoped to the stack's cluster and namespace (labels Managed Prometheus adds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

COLUMNS = 48
TILE_W = 24
TILE_H = 16


@dataclass(frozen=True)
class Scope:
    cluster: str
    namespace: str

    @property
    def sel(self) -> str:
        return f'cluster="{self.cluster}",namespace="{self.namespace}"'

    @property
    def cluster_sel(self) -> str:
        return f'cluster="{self.cluster}"'


def kv_cache_usage(s: Scope) -> str:
    return f"max by (pod) (vllm:kv_cache_usage_perc{{{s.sel}}})"


def queue_depth(s: Scope) -> str:
    return f"max by (pod) (vllm:num_requests_waiting{{{s.sel}}})"


def picker_up(s: Scope) -> str:
    """1 when at least one picker replica is scraped and up, per pool picker job."""
    return f'max by (job) (up{{{s.sel},job=~".*-epp.*"}})'


def panels(s: Scope) -> list[tuple[str, list[str], str]]:
    """(title, PromQL queries, y-axis label) in display order."""
    hist = lambda metric, q: (  # noqa: E731 - reads better inline
        f"histogram_quantile({q}, sum by (le, model_name) (rate({metric}_bucket{{{s.sel}}}[5m])))"
    )
    return [
        ("Requests per second by model", [f"sum by (model_name) (rate(vllm:request_success_total{{{s.sel}}}[1m]))"], "req/s"),
        ("Time to first token p50 / p99 (s)", [hist("vllm:time_to_first_token_seconds", 0.5), hist("vllm:time_to_first_token_seconds", 0.99)], "seconds"),
        (
            "Time per output token p50 / p99 (s)",
            [hist("vllm:request_time_per_output_token_seconds", 0.5), hist("vllm:request_time_per_output_token_seconds", 0.99)],
            "seconds",
        ),
        ("Queue depth per pod (waiting requests)", [queue_depth(s)], "requests"),
        ("KV-cache use per pod (0-1)", [kv_cache_usage(s)], "fraction"),
        (
            "Picker decision latency p50 / p99 (s)",
            [
                f"histogram_quantile({q}, sum by (le, job) (rate(picker_decision_duration_seconds_bucket{{{s.sel}}}[5m])))"
                for q in (0.5, 0.99)
            ],
            "seconds",
        ),
        (
            "Rejected requests per second (429 / 503) by reason",
            [f'sum by (code, reason) (rate(picker_rejected_requests_total{{{s.sel},code=~"429|503"}}[1m]))'],
            "req/s",
        ),
        (
            "Endpoint saturation as the picker sees it (1 = full or its metrics stale)",
            [f"max by (endpoint) (picker_endpoint_saturation{{{s.sel}}})"],
            "fraction",
        ),
        ("GPU utilisation per node (%)", [f"avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL{{{s.cluster_sel}}})"], "percent"),
        # Flow control (pools[].picker.flow_control): what waits in the pickers, and for how long.
        ("Requests held by the picker per priority", [f"sum by (priority) (picker_flow_queue_size{{{s.sel}}})"], "requests"),
        (
            "Picker queue wait p99 per priority (s)",
            [f'histogram_quantile(0.99, sum by (le, priority) (rate(picker_flow_queue_wait_seconds_bucket{{{s.sel},outcome="dispatched"}}[5m])))'],
            "seconds",
        ),
    ]


def _tile(index: int, title: str, queries: list[str], label: str) -> dict[str, Any]:
    return {
        "xPos": (index % 2) * TILE_W,
        "yPos": (index // 2) * TILE_H,
        "width": TILE_W,
        "height": TILE_H,
        "widget": {
            "title": title,
            "xyChart": {
                "dataSets": [
                    {"timeSeriesQuery": {"prometheusQuery": q}, "plotType": "LINE", "targetAxis": "Y1"} for q in queries
                ],
                "yAxis": {"label": label, "scale": "LINEAR"},
            },
        },
    }


def dashboard(display_name: str, scope: Scope) -> dict[str, Any]:
    return {
        "displayName": display_name,
        "mosaicLayout": {
            "columns": COLUMNS,
            "tiles": [_tile(i, *p) for i, p in enumerate(panels(scope))],
        },
    }


def dashboard_json(display_name: str, scope: Scope) -> str:
    return json.dumps(dashboard(display_name, scope), indent=2, sort_keys=True)


@dataclass(frozen=True)
class AlertSpec:
    name: str
    display_name: str
    query: str
    duration_seconds: int
    documentation: str


def alerts(scope: Scope, *, queue_threshold: float, kv_threshold: float, saturation_minutes: int, picker_minutes: int) -> list[AlertSpec]:
    return [
        AlertSpec(
            "queue-saturation",
            "Model servers saturated: waiting queue",
            f"{queue_depth(scope)} > {queue_threshold:g}",
            saturation_minutes * 60,
            f"A model-server pod has had more than {queue_threshold:g} waiting requests for {saturation_minutes} min. "
            "Add replicas (or GPU nodes), or shed more traffic as Sheddable.",
        ),
        AlertSpec(
            "kv-cache-saturation",
            "Model servers saturated: KV cache",
            f"({kv_cache_usage(scope)}) > {kv_threshold:g}",
            saturation_minutes * 60,
            f"A model-server pod has used more than {kv_threshold:.0%} of its KV cache for {saturation_minutes} min; "
            "requests queue and preempt. Add replicas or lower max-model-len.",
        ),
        AlertSpec(
            "picker-unavailable",
            "Endpoint picker unavailable",
            f"({picker_up(scope)}) < 1 or absent(up{{{scope.sel},job=~\".*-epp.*\"}})",
            picker_minutes * 60,
            f"No endpoint picker has been scraped as up for {picker_minutes} min. FailClose pools return 5xx; "
            "FailOpen pools route without load awareness. Check the <pool>-epp Deployment.",
        ),
        AlertSpec(
            "picker-no-endpoints",
            "Endpoint picker has no ready model servers",
            f"sum by (job) (rate(picker_rejected_requests_total{{{scope.sel},code=\"503\"}}[5m])) > 0",
            picker_minutes * 60,
            f"The picker has answered 503 (no eligible endpoints) for {picker_minutes} min: no model-server pod is ready.",
        ),
    ]
