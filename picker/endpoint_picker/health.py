"""gRPC health (grpc.health.v1) on its own port.

`liveness` is SERVING while the process runs (including drain). `readiness`, "" and the
ext_proc service are SERVING only when discovery has synced and, with leader election, this
replica leads; shutdown flips them to NOT_SERVING first so gateways stop sending traffic.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

LIVENESS = "liveness"
READINESS = "readiness"
EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
GATED = ("", READINESS, EXT_PROC_SERVICE)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    def __init__(self) -> None:
        self.servicer = health_aio.HealthServicer()
        self._ready: bool | None = None

    async def start(self) -> None:
        await self.servicer.set(LIVENESS, SERVING)
        await self.set_ready(False)

    async def set_ready(self, ready: bool) -> None:
        if ready == self._ready:
            return
        self._ready = ready
        for name in GATED:
            await self.servicer.set(name, SERVING if ready else NOT_SERVING)

    @property
    def ready(self) -> bool:
        return bool(self._ready)
