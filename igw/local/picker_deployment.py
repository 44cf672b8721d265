"""What a rendered picker Deployment says about running its pickers (pure, no processes).

A local run follows the same objects a cluster would: `spec.replicas` pickers per pool (more than
one with `--ha-enable-leader-election`: one leads, the others stand by), their leader-election
timings from the container args, and the kubelet's view of them from the probes:

* readinessProbe — a picker is an endpoint of its Service (here: of Envoy's picker cluster) only
  while it passes; a failed probe takes it out, so the gateway stops sending it streams;
* livenessProbe — `failureThreshold` failed probes in a row restart it: SIGTERM, then SIGKILL
  after the probe's `terminationGracePeriodSeconds` (else the pod's), as the kubelet does.

Probe fields default as in Kubernetes (period 10 s, timeout 1 s, failure threshold 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEADER_ELECTION_FLAG = "--ha-enable-leader-election"
_LEASE_FLAGS = ("--ha-lease-duration", "--ha-retry-period")


@dataclass(frozen=True)
class Probe:
    """A gRPC health probe (`grpc.service`) with the kubelet's timing fields."""

    service: str
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3
    initial_delay_s: float = 0.0
    termination_grace_s: float | None = None

    @classmethod
    def from_manifest(cls, probe: dict[str, Any] | None, default_service: str) -> Probe:
        p = probe or {}
        return cls(service=str((p.get("grpc") or {}).get("service") or default_service),
                   period_s=float(p.get("periodSeconds", 10)), timeout_s=float(p.get("timeoutSeconds", 1)),
                   failure_threshold=int(p.get("failureThreshold", 3)),
                   initial_delay_s=float(p.get("initialDelaySeconds", 0)),
                   termination_grace_s=(float(p["terminationGracePeriodSeconds"])
                                        if p.get("terminationGracePeriodSeconds") is not None else None))


@dataclass(frozen=True)
class PickerDeployment:
    replicas: int = 1
    leader_election_args: tuple[str, ...] = ()    # the flag plus its timings, as rendered
    liveness: Probe = Probe("liveness")
    readiness: Probe = Probe("readiness", period_s=2.0)
    termination_grace_s: float = 30.0

    @property
    def leader_election(self) -> bool:
        return bool(self.leader_election_args)

    @property
    def liveness_kill_grace_s(self) -> float:
        """How long a picker failing liveness gets between SIGTERM and SIGKILL."""
        g = self.liveness.termination_grace_s
        return self.termination_grace_s if g is None else g

    @classmethod
    def from_manifest(cls, deployment: dict[str, Any]) -> PickerDeployment:
        spec = deployment.get("spec") or {}
        pod = ((spec.get("template") or {}).get("spec") or {})
        container = next(iter(pod.get("containers") or []), {})
        args = tuple(str(a) for a in container.get("args") or [])
        election: list[str] = []
        if LEADER_ELECTION_FLAG in args:
            election.append(LEADER_ELECTION_FLAG)
            for i, a in enumerate(args):
                if a in _LEASE_FLAGS and i + 1 < len(args):
                    election += [a, args[i + 1]]
                elif a.split("=", 1)[0] in _LEASE_FLAGS:
                    election.append(a)
        return cls(
            replicas=max(1, int(spec.get("replicas", 1))),
            leader_election_args=tuple(election),
            liveness=Probe.from_manifest(container.get("livenessProbe"), "liveness"),
            readiness=Probe.from_manifest(container.get("readinessProbe"), "readiness"),
            termination_grace_s=float(pod.get("terminationGracePeriodSeconds", 30)),
        )
