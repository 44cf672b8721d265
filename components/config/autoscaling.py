"""Stack config for capacity that follows demand: model-server autoscaling, scale to zero (seed
002's `scale_to_zero_enabled`), the picker's flow control, and the KEDA install that runs it on GKE.

    model_servers:
      - name: llama
        autoscaling: {min_replicas: 0, max_replicas: 4, metric: queue, target: 5, scale_down_delay: 300}
        # or, seed 002's words: scale_to_zero_enabled: true  (0 .. replicas, queue metric)
    pools:
      - name: llama
        picker: {flow_control: {ttl_seconds: 30, no_endpoint_ttl_seconds: 60}}

Defaults follow GKE's guidance for LLM servers ("Best practices for autoscaling LLM inference
workloads with GPUs on GKE"): scale vLLM on its queue (`vllm:num_requests_waiting`, throughput)
or its running batch (`vllm:num_requests_running`, latency), not on GPU utilisation; GKE's vLLM
HPA examples use an average of 5 waiting requests per replica. Scale-down waits 300 s, the
Kubernetes HPA's own default downscale stabilisation. This module imports nothing from the rest
of the config package; the cross-section rules are `autoscaling_rules(cfg)`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from ._base import Strict

QUEUE_TARGET = 5.0
"""Waiting requests per replica (GKE's vLLM HPA examples: averageValue 5 on num_requests_waiting)."""
RUNNING_TARGET_FRACTION = 0.8
"""`running` without a target: 80% of the server's --max-num-seqs (its batch limit), so replicas
are added before the batch is full and requests start queueing."""


class ServerAutoscaling(Strict):
    """`model_servers[].autoscaling`: replicas between min and max, on one metric per replica.
    (Not `node_pools[].autoscaling`, which sizes the GPU node pool.)"""

    min_replicas: int = Field(1, ge=0)
    """0 = scale to zero when idle (requests wait in the picker while a replica starts)."""
    max_replicas: int = Field(ge=1)
    metric: Literal["queue", "running"] = "queue"
    """queue: vllm:num_requests_waiting (throughput); running: vllm:num_requests_running
    (latency). Either way the picker's held requests count too (a pool at zero has no server)."""
    target: float | None = Field(None, gt=0)
    """Per replica. Default: 5 for queue; 80% of --max-num-seqs for running."""
    scale_down_delay: int = Field(300, ge=0, le=3600)
    """Seconds the demand must stay low before a replica is removed (and before the last one goes)."""
    polling_interval: int = Field(15, ge=1, le=300)
    """Seconds between metric reads (KEDA pollingInterval; GKE's HPA evaluates every 15 s)."""

    @model_validator(mode="after")
    def _bounds(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be at most max_replicas ({self.max_replicas})")
        return self


class FlowControlSettings(Strict):
    """`pools[].picker.flow_control`: requests wait in the picker instead of being refused while
    the pool is saturated or has no ready replica (picker/README.md, "Flow control")."""

    enabled: bool = True
    max_queued_per_priority: int = Field(1000, ge=1, le=100_000)
    ttl_seconds: float = Field(30, gt=0, le=3600)
    """How long a request waits at saturation before 429/503 rejected-ttl-expired."""
    no_endpoint_ttl_seconds: float = Field(60, gt=0, le=3600)
    """How long a request waits for a pool with no ready replica (scale from zero) before 503
    rejected-no-endpoints. The reference picker's noEndpointRequestTTL is 60 s; set it to the
    pool's cold start (node, image and model load) or clients will see 503s after an idle period."""


class KedaSettings(Strict):
    """KEDA runs the autoscaling on GKE (ScaledObjects with a Prometheus trigger on Managed
    Prometheus). It is a cluster add-on in its own namespace, so a stack installs it only when
    asked; otherwise install it once per cluster:
    ``helm install keda kedacore/keda --version 2.20.2 --namespace keda --create-namespace``."""

    install: bool = False
    version: str = Field("2.20.2", pattern=r"^\d+\.\d+\.\d+$")
    namespace: str = "keda"
    service_account: str = "keda-operator"
    """KEDA's operator account: Workload Identity lets it read Managed Prometheus (roles/monitoring.viewer)."""


def max_num_seqs(extra_args: list[str]) -> int | None:
    for i, a in enumerate(extra_args):
        key, eq, val = a.partition("=")
        if key == "--max-num-seqs":
            raw = val if eq else (extra_args[i + 1] if i + 1 < len(extra_args) else "")
            return int(raw) if raw.isdigit() else None
    return None


def effective_autoscaling(server: Any) -> ServerAutoscaling | None:
    """The policy a model server scales by: its `autoscaling`, or seed 002's
    `scale_to_zero_enabled` alone (0 .. `replicas`, on the queue), else None (fixed replicas)."""
    a = server.autoscaling
    if a is None and server.scale_to_zero_enabled:
        a = ServerAutoscaling(min_replicas=0, max_replicas=max(1, server.replicas))
    if a is None or a.target is not None:
        return a
    if a.metric == "queue":
        return a.model_copy(update={"target": QUEUE_TARGET})
    seqs = max_num_seqs(server.extra_args)
    return a.model_copy(update={"target": float(max(1, math.floor(RUNNING_TARGET_FRACTION * seqs)))}) if seqs else a


def flow_control_for(pool: Any, server: Any | None) -> FlowControlSettings | None:
    """The pool's flow control: as configured, on by default for a pool whose server can scale to
    zero (it must hold requests while no replica runs), else off."""
    fc = pool.picker.flow_control
    if fc is not None:
        return fc if fc.enabled else None
    policy = effective_autoscaling(server) if server is not None else None
    return FlowControlSettings() if policy is not None and policy.min_replicas == 0 else None


def autoscaling_rules(cfg: Any) -> list[str]:
    """Rules across model servers, pools and observability; each message starts with its YAML path."""
    from ..catalog.runtimes import PRESETS

    problems: list[str] = []
    add = problems.append
    for i, s in enumerate(cfg.model_servers):
        a = s.autoscaling
        if a is None and not s.scale_to_zero_enabled:
            continue
        path = f"model_servers[{i}]"
        if a is not None and "replicas" in s.model_fields_set:
            add(f"{path}.replicas: {s.replicas} is set, but the autoscaler owns the replica count; "
                "remove replicas and set autoscaling.min_replicas / max_replicas")
        if s.scale_to_zero_enabled and a is not None and a.min_replicas > 0:
            add(f"{path}.scale_to_zero_enabled: true needs autoscaling.min_replicas 0 (it is {a.min_replicas})")
        if "queue" not in PRESETS[s.runtime].picker_signals:
            add(f"{path}.autoscaling: runtime {s.runtime!r} exposes no vLLM queue metrics to scale on; "
                "autoscaling needs the vllm runtime")
        policy = effective_autoscaling(s)
        if policy is not None and policy.target is None:
            add(f"{path}.autoscaling.target: metric 'running' needs a target (requests in the batch per replica); "
                "set it below the server's batch limit, or set --max-num-seqs in extra_args to default to 80% of it")
        if not cfg.cluster.gke:
            add(f"{path}.autoscaling: runs on Google Cloud Managed Prometheus metrics, which needs a GKE cluster")
        elif not cfg.observability.pod_monitoring:
            add(f"{path}.autoscaling: reads the metrics Managed Prometheus scrapes; set observability.pod_monitoring: true")
    for i, p in enumerate(cfg.pools):
        fc = p.picker.flow_control
        server = next((s for s in cfg.model_servers if s.name == p.model_server), None)
        policy = effective_autoscaling(server) if server is not None else None
        if fc is not None and not fc.enabled and policy is not None and policy.min_replicas == 0:
            add(f"pools[{i}].picker.flow_control.enabled: false, but model server {server.name!r} scales to zero; "
                "its requests must wait in the picker while no replica runs")
        if server is None and fc is not None and fc.enabled:
            add(f"pools[{i}].picker.flow_control: an external model's pool has no replicas to wait for; remove it")
    return problems
