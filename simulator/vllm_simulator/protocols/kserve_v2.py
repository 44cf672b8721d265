"""KServe v2 (Open Inference Protocol) REST for the OpenVINO Model Server and Triton runtimes.

`GET /v2` (server metadata), `GET /v2/health/live|ready`, `GET /v2/models/<m>[/versions/<v>]`
(model metadata), `GET .../ready`, `POST .../infer` with `{"id"?, "inputs": [{name, shape,
datatype, data}], "outputs"?: [{name}]}` answered with `{"model_name", "model_version", "id"?,
"outputs": [...]}`. Errors are `{"error": "<message>"}` with each server's status and text
(kserve_model.py). `/metrics` has the server's own metric names (Triton's `nv_inference_*`,
OVMS's `ovms_*`; real Triton serves them on its metrics port 8002).

Inference runs on the shared engine as one forward pass over the input elements. gRPC
(inference.GRPCInferenceService) is in kserve_v2_grpc.py.
"""

from __future__ import annotations

import time
from collections import Counter

import orjson

from . import engine_jobs
from . import kserve_model as M
from .base import JSON, RuntimeApi, model_header, route_regex
from .kserve_model import KServeError

_MODEL = route_regex("/v2/models/{model}")
_MODEL_V = route_regex("/v2/models/{model}/versions/{version}")
_SUFFIXES = ("/ready", "/infer")


class KServeApi(RuntimeApi):
    def __init__(self, replica, runtime: str) -> None:
        super().__init__(replica)
        self.runtime = runtime
        self.routes = {
            "/v2": ("GET", self.h_server_metadata),
            "/v2/health/live": ("GET", self.h_live),
            "/v2/health/ready": ("GET", self.h_ready),
            "/metrics": ("GET", self.h_metrics),
        }
        self.success: Counter = Counter()   # (model, interface) -> requests
        self.failure: Counter = Counter()
        self.duration_us: Counter = Counter()

    @property
    def models(self) -> list[str]:
        return self.cfg.served_model_name

    @property
    def serves_grpc(self) -> bool:
        return True

    def add_grpc(self, server) -> None:
        from .kserve_v2_grpc import add_servicer

        add_servicer(self, server)

    def match(self, path: str):
        route = self.routes.get(path)
        if route is not None or not path.startswith("/v2/models/"):
            return route
        suffix = next((s for s in _SUFFIXES if path.endswith(s)), "")
        base = path[: len(path) - len(suffix)]
        m = _MODEL_V.match(base) or _MODEL.match(base)
        if m is None:
            return None
        model, version = m.group("model"), m.groupdict().get("version")
        if suffix == "/infer":
            return "POST", lambda conn, req: self.h_infer(conn, req, model, version)
        if suffix == "/ready":
            return "GET", lambda conn, req: self.h_model_ready(conn, req, model, version)
        return "GET", lambda conn, req: self.h_model_metadata(conn, req, model, version)

    def not_found(self, conn) -> None:
        conn.respond(404, orjson.dumps({"error": "Not Found"}), JSON)

    def _error(self, conn, e: KServeError, model: str | None = None) -> None:
        conn.respond(e.http, orjson.dumps({"error": e.message}), JSON, model_header(model) if model else b"")

    def record(self, model: str, interface: str, ok: bool, started: float) -> None:
        if model not in self.models:
            return  # as the servers do: no per-model series for names that are not models
        (self.success if ok else self.failure)[(model, interface)] += 1
        self.duration_us[(model, interface)] += int((time.monotonic() - started) * 1e6)

    # ------------------------------------------------------------------ server
    def h_server_metadata(self, conn, req) -> None:
        s = M.SERVERS[self.runtime]
        conn.respond(200, orjson.dumps({"name": s["name"], "version": s["version"], "extensions": s["extensions"]}), JSON)

    def h_live(self, conn, req) -> None:
        conn.respond(200, b"", None)

    def h_ready(self, conn, req) -> None:
        conn.respond(503 if self.replica.starting() else 200, b"", None)

    # ------------------------------------------------------------------ models
    def h_model_metadata(self, conn, req, model: str, version: str | None) -> None:
        try:
            M.check_model(self.runtime, self.models, model, version)
        except KServeError as e:
            return self._error(conn, e)
        conn.respond(200, orjson.dumps(M.metadata(self.runtime, model)), JSON, model_header(model))

    def h_model_ready(self, conn, req, model: str, version: str | None) -> None:
        try:
            M.check_model(self.runtime, self.models, model, version)
        except KServeError as e:
            return self._error(conn, e)
        conn.respond(503 if self.replica.starting() else 200, b"", None)

    def _parse_infer(self, req, model: str) -> tuple[M.Tensor, str | None]:
        try:
            body = self.json_body(req)
        except ValueError as e:
            raise M.error(self.runtime, "body", model, str(e)) from None
        if not isinstance(body, dict):
            raise M.error(self.runtime, "body", model, "the request body must be a JSON object")
        inputs = []
        for t in body.get("inputs") or []:
            if not isinstance(t, dict):
                raise M.error(self.runtime, "body", model, "every input must be an object")
            shape = t.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
                raise M.error(self.runtime, "shape", model, str(shape))
            try:
                values = [float(v) for v in M.flatten(t.get("data", []))]
            except (TypeError, ValueError):
                raise M.error(self.runtime, "datatype", model, str(t.get("datatype"))) from None
            inputs.append(M.Tensor(str(t.get("name", "")), str(t.get("datatype", "")), shape, values))
        outputs = [str(o.get("name", "")) for o in body.get("outputs") or [] if isinstance(o, dict)]
        rid = body.get("id")
        return M.validate(self.runtime, model, inputs, outputs), rid if isinstance(rid, str) else None

    def h_infer(self, conn, req, model: str, version: str | None) -> None:
        started = time.monotonic()
        fault = self.fault()
        if fault is not None:
            return conn.respond(fault[0], orjson.dumps({"error": fault[1]}), JSON)
        try:
            M.check_model(self.runtime, self.models, model, version)
            tensor, rid = self._parse_infer(req, model)
        except KServeError as e:
            self.record(model, "REST", False, started)
            return self._error(conn, e, model)

        def done(job, error):
            if error:
                self.record(model, "REST", False, started)
                return conn.respond(400, orjson.dumps({"error": error}), JSON)
            self.record(model, "REST", True, started)
            out = {"model_name": model, "model_version": M.VERSION}
            if rid is not None:
                out["id"] = rid
            out["outputs"] = [{"name": M.OUTPUT, "datatype": "FP32", "shape": [tensor.shape[0], M.CLASSES],
                               "data": M.infer(model, tensor)}]
            conn.respond(200, orjson.dumps(out), JSON, model_header(model))

        job = engine_jobs.prefill(self.replica, len(tensor.values), done)
        conn.on_close = job.cancel

    # ------------------------------------------------------------------ metrics
    def h_metrics(self, conn, req) -> None:
        eng = self.replica.engine
        lines: list[str] = []
        keys = sorted(set(self.success) | set(self.failure) | {(m, "REST") for m in self.models})
        if self.runtime == "triton":
            lines += ["# HELP nv_inference_request_success Number of successful inference requests, all batch sizes",
                      "# TYPE nv_inference_request_success counter"]
            lines += [f'nv_inference_request_success{{model="{m}",version="1"}} {sum(v for (mm, _), v in self.success.items() if mm == m)}'
                      for m in self.models]
            lines += ["# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes",
                      "# TYPE nv_inference_request_failure counter"]
            lines += [f'nv_inference_request_failure{{model="{m}",reason="REJECTED",version="1"}} '
                      f'{sum(v for (mm, _), v in self.failure.items() if mm == m)}' for m in self.models]
            lines += ["# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution",
                      "# TYPE nv_inference_pending_request_count gauge",
                      f'nv_inference_pending_request_count{{model="{self.models[0]}",version="1"}} {len(eng.waiting) + len(eng.running)}']
        else:
            lines += ["# HELP ovms_requests_success Number of successful requests to a model or a DAG.",
                      "# TYPE ovms_requests_success counter"]
            lines += [f'ovms_requests_success{{api="KServe",interface="{i}",method="ModelInfer",name="{m}",version="1"}} {self.success[(m, i)]}'
                      for m, i in keys]
            lines += ["# HELP ovms_requests_fail Number of failed requests to a model or a DAG.",
                      "# TYPE ovms_requests_fail counter"]
            lines += [f'ovms_requests_fail{{api="KServe",interface="{i}",method="ModelInfer",name="{m}",version="1"}} {self.failure[(m, i)]}'
                      for m, i in keys]
            lines += ["# HELP ovms_current_requests Number of inference requests currently in process.",
                      "# TYPE ovms_current_requests gauge",
                      f'ovms_current_requests{{name="{self.models[0]}",version="1"}} {len(eng.waiting) + len(eng.running)}']
        conn.respond(200, ("\n".join(lines) + "\n").encode(), b"text/plain; version=0.0.4; charset=utf-8")
