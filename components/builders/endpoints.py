"""What users call (pure): the URL and a ready-to-run request per served model.

A model is listed under the first route that reaches its pool, preferring external gateways and
HTTPS listeners. When the gateway's IP is only known after `pulumi up` (no reserved address),
the command first reads it from the Gateway's status with kubectl.

The request is the runtime's own (seed 003): an OpenAI chat completion for vLLM, a Caikit task
(`{"model_id", "inputs"}`), a KServe v2 infer (the tensor is the model's: placeholders), or for
gRPC pools a `grpcurl` call of the runtime's method with its .proto file (TGIS and Caikit
servers have no reflection), Caikit's model in the `mm-model-id` header.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..catalog.runtime_preset import MODEL_PLACEHOLDER, RuntimePreset
from ..config import GatewayConfig, RouteConfig, StackConfig
from ..config.runtime_rules import invocation_path, pool_preset
from ..config.served_models import served_targets
from .routes import DEPLOYED_MODEL_HEADER

IP_PLACEHOLDER = "${GATEWAY_IP}"


GRPC_CALLS = {
    # runtime -> (service/method, request JSON, .proto file) of its inference call (seed 003)
    "tgis": ("fmaas.GenerationService/Generate", {"requests": [{"text": "Say hello."}]}, "generation.proto"),
    "caikit-tgis": ("caikit.runtime.Nlp.NlpService/TextGenerationTaskPredict", {"text": "Say hello."}, "caikit_runtime_Nlp.proto"),
    "caikit-standalone": ("caikit.runtime.Nlp.NlpService/EmbeddingTaskPredict", {"text": "Say hello."}, "caikit_runtime_Nlp.proto"),
    "openvino": ("inference.GRPCInferenceService/ModelMetadata", {"name": MODEL_PLACEHOLDER}, "grpc_predict_v2.proto"),
    "triton": ("inference.GRPCInferenceService/ModelMetadata", {"name": MODEL_PLACEHOLDER}, "grpc_predict_v2.proto"),
}
KSERVE_TENSOR = {"name": "<input name>", "shape": ["<shape>"], "datatype": "<datatype>", "data": ["<data>"]}
"""A KServe v2 input is the model's own: the seed's placeholders (GET /v2/models/<m> lists them)."""


def endpoint_path(route: RouteConfig, landing: str | None) -> str | None:
    """The path a client POSTs an inference request to on this route; ``landing`` is the
    pool's inference path (``runtime_rules.invocation_path``), None for gRPC pools."""
    if route.shape == "predict":
        return route.predict_route
    if landing is None:
        return None
    if route.shape == "invoke":
        return route.mount + landing
    if landing.startswith(route.path_prefix):
        return landing
    return route.path_prefix.rstrip("/") + landing


def base_url(gateway: GatewayConfig, ip: str) -> str:
    listener = next((l for l in gateway.listeners if l.protocol == "HTTPS"), gateway.listeners[0])
    scheme = listener.protocol.lower()
    host = listener.hostname or ip
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if listener.port == default else f":{listener.port}")


def request_body(path: str, model: str, api: str = "openai") -> dict[str, Any]:
    """The runtime's own request body for an inference call to ``path``."""
    if api == "caikit":
        return {"model_id": model, "inputs": "Say hello."}
    if api == "kserve-v2":
        return {"inputs": [KSERVE_TENSOR]}
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return {"model": model, "prompt": "Say hello.", "max_tokens": 64}
    return {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}


def _read_ip(cmd: str, url: str, gateway: GatewayConfig, namespace: str, ip_known: bool) -> str:
    if IP_PLACEHOLDER in url:
        cmd = cmd.replace(shlex.quote(url), f'"{url}"')
        if not ip_known:
            read_ip = (
                f"GATEWAY_IP=$(kubectl get gateway/{gateway.name} -n {namespace} "
                "-o jsonpath='{.status.addresses[0].value}')"
            )
            cmd = f"{read_ip} && {cmd}"
    return cmd


def curl(url: str, model: str, *, gateway: GatewayConfig, namespace: str, ip_known: bool, api_key: bool,
         headers: dict[str, str] | None = None, api: str = "openai") -> str:
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url), "-H", shlex.quote("Content-Type: application/json")]
    if api_key:
        parts += ["-H", '"Authorization: Bearer ${API_KEY}"']
    for k, v in (headers or {}).items():
        parts += ["-H", shlex.quote(f"{k}: {v}")]
    parts += ["-d", shlex.quote(json.dumps(request_body(url, model, api), separators=(",", ":")))]
    return _read_ip(" ".join(parts), url, gateway, namespace, ip_known)


def grpcurl(base: str, preset: RuntimePreset, model: str, *, gateway: GatewayConfig, namespace: str, ip_known: bool,
            api_key: bool, headers: dict[str, str] | None = None) -> str:
    """A grpcurl call of the runtime's inference method through the gateway (``base`` is the
    listener's URL: cleartext HTTP/2 on an HTTP listener, TLS on HTTPS)."""
    method, body, proto = GRPC_CALLS[preset.name]
    scheme, _, hostport = base.partition("://")
    if ":" not in hostport.rsplit("]", 1)[-1]:
        hostport += ":443" if scheme == "https" else ":80"
    parts = ["grpcurl"] + (["-plaintext"] if scheme == "http" else []) + ["-proto", proto]
    if api_key:
        parts += ["-H", '"Authorization: Bearer ${API_KEY}"']
    if preset.api == "caikit":
        parts += ["-H", shlex.quote(f"mm-model-id: {model}")]
    for k, v in (headers or {}).items():
        parts += ["-H", shlex.quote(f"{k}: {v}")]
    data = json.dumps(body, separators=(",", ":")).replace(MODEL_PLACEHOLDER, model)
    parts += ["-d", shlex.quote(data), f'"{hostport}"' if IP_PLACEHOLDER in hostport else hostport, method]
    return _read_ip(" ".join(parts), hostport, gateway, namespace, ip_known)


def _call(cfg: StackConfig, g: GatewayConfig, r: RouteConfig, pool: str, base: str, ip: str | None, model: str,
          landing_model: str, headers: dict[str, str], path: str | None = None) -> tuple[str, str]:
    """(url, command) of one inference request to ``model`` through route ``r`` into ``pool``."""
    preset = pool_preset(cfg, pool)
    api_key = cfg.pool(pool).picker.api_keys
    common = {"gateway": g, "namespace": cfg.namespace, "ip_known": ip is not None, "api_key": api_key}
    if preset is not None and preset.protocol == "grpc":
        return base, grpcurl(base, preset, model, headers=headers, **common)
    if path is None:
        landing = invocation_path(cfg, r, pool)
        path = endpoint_path(r, landing.replace(MODEL_PLACEHOLDER, landing_model) if landing else None) or "/"
    url = base + path
    return url, curl(url, model, headers=headers, api=preset.api if preset else "openai", **common)


def _gated(route: RouteConfig) -> bool:
    return bool(route.matches) and all(m.headers for m in route.matches)


def _route_headers(route: RouteConfig) -> dict[str, str]:
    """Headers a client must send to match a header-gated route (its first exact match)."""
    if not _gated(route):
        return {}
    return {h.name: h.value for h in route.matches[0].headers if h.type == "Exact"}


def _ordered_routes(cfg: StackConfig) -> list[tuple[GatewayConfig, RouteConfig]]:
    """External gateways first, ungated routes before header-gated ones, then config order."""
    pairs = [(g, r) for g in cfg.gateways for r in g.routes]
    return sorted(pairs, key=lambda p: (p[0].internal, _gated(p[1]), cfg.gateways.index(p[0])))


def model_endpoints(cfg: StackConfig, ips: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """{client model name: {gateway, route, url, curl}}; `ips` maps gateway -> IP or None."""
    out: dict[str, dict[str, str]] = {}
    for g, r in _ordered_routes(cfg):
        ip = ips.get(g.name)
        base = base_url(g, ip or IP_PLACEHOLDER)
        for m in cfg.models:
            if m.pool not in r.pools or m.name in out:
                continue
            url, cmd = _call(cfg, g, r, m.pool, base, ip, m.name, m.name, _route_headers(r))
            out[m.name] = {"gateway": g.name, "route": r.name, "url": url, "curl": cmd}
    return out


def served_model_endpoints(cfg: StackConfig, ips: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """{"<gateway>/<served name>": {model, target, url, curl}}: one served model directly,
    bypassing the traffic split (seed 002 path or seed 000 header)."""
    out: dict[str, dict[str, str]] = {}
    for g, r in _ordered_routes(cfg):
        if not r.served_model_routes:
            continue
        ip = ips.get(g.name)
        base = base_url(g, ip or IP_PLACEHOLDER)
        for t in served_targets(cfg.models, r.pools):
            key = f"{g.name}/{t.name}"
            if key in out:
                continue
            preset = pool_preset(cfg, t.pool)
            if r.shape == "prefix" and not (preset is not None and preset.protocol == "grpc"):
                url, cmd = _call(cfg, g, r, t.pool, base, ip, t.client_model, t.model, {}, path=t.invocations_path)
            else:
                headers = {**_route_headers(r), DEPLOYED_MODEL_HEADER: t.name}
                url, cmd = _call(cfg, g, r, t.pool, base, ip, t.client_model, t.client_model, headers)
            out[key] = {"model": t.client_model, "target": t.model, "url": url, "curl": cmd}
    return out
