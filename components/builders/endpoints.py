"""What users call (pure): the URL and a ready-to-run curl per served model.

A model is listed under the first route that reaches its pool, preferring external gateways and
HTTPS listeners. When the gateway's IP is only known after `pulumi up` (no reserved address),
the curl first reads it from the Gateway's status with kubectl.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..config import GatewayConfig, RouteConfig, StackConfig
from ..config.served_models import served_targets
from .routes import DEPLOYED_MODEL_HEADER, INVOKE_PREFIX

IP_PLACEHOLDER = "${GATEWAY_IP}"


def endpoint_path(route: RouteConfig) -> str:
    """The path a client POSTs an inference request to on this route."""
    if route.shape == "predict":
        return route.predict_route  # type: ignore[return-value]
    if route.shape == "invoke":
        return INVOKE_PREFIX.rstrip("/") + route.invocations_path
    if route.invocations_path.startswith(route.path_prefix):
        return route.invocations_path
    return route.path_prefix.rstrip("/") + route.invocations_path


def base_url(gateway: GatewayConfig, ip: str) -> str:
    listener = next((l for l in gateway.listeners if l.protocol == "HTTPS"), gateway.listeners[0])
    scheme = listener.protocol.lower()
    host = listener.hostname or ip
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if listener.port == default else f":{listener.port}")


def request_body(path: str, model: str) -> dict[str, Any]:
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return {"model": model, "prompt": "Say hello.", "max_tokens": 64}
    return {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}


def curl(url: str, model: str, *, gateway: GatewayConfig, namespace: str, ip_known: bool, api_key: bool, headers: dict[str, str] | None = None) -> str:
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url), "-H", shlex.quote("Content-Type: application/json")]
    if api_key:
        parts += ["-H", '"Authorization: Bearer ${API_KEY}"']
    for k, v in (headers or {}).items():
        parts += ["-H", shlex.quote(f"{k}: {v}")]
    parts += ["-d", shlex.quote(json.dumps(request_body(url, model), separators=(",", ":")))]
    cmd = " ".join(parts)
    if IP_PLACEHOLDER in url:
        cmd = cmd.replace(shlex.quote(url), f'"{url}"')
        if not ip_known:
            read_ip = (
                f"GATEWAY_IP=$(kubectl get gateway/{gateway.name} -n {namespace} "
                "-o jsonpath='{.status.addresses[0].value}')"
            )
            cmd = f"{read_ip} && {cmd}"
    return cmd


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
        url = base_url(g, ip or IP_PLACEHOLDER) + endpoint_path(r)
        for m in cfg.models:
            if m.pool not in r.pools or m.name in out:
                continue
            out[m.name] = {
                "gateway": g.name,
                "route": r.name,
                "url": url,
                "curl": curl(url, m.name, gateway=g, namespace=cfg.namespace, ip_known=ip is not None,
                             api_key=cfg.pool(m.pool).picker.api_keys, headers=_route_headers(r)),
            }
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
            if r.shape == "prefix":
                url, headers = base + t.invocations_path, {}
            else:
                url, headers = base + endpoint_path(r), {**_route_headers(r), DEPLOYED_MODEL_HEADER: t.name}
            out[key] = {
                "model": t.client_model,
                "target": t.model,
                "url": url,
                "curl": curl(url, t.client_model, gateway=g, namespace=cfg.namespace, ip_known=ip is not None,
                             api_key=cfg.pool(t.pool).picker.api_keys, headers=headers),
            }
    return out
