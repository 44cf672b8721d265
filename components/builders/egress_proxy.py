"""The egress proxy of an external model (pure): the Envoy config that carries a task's requests
to the provider.

Why an in-cluster proxy and not the load balancer: GKE's gateway reaches Services (NEGs of pod
IPs) and InferencePools; it has no backend for an external hostname (Gateway API says
implementations SHOULD NOT follow ExternalName Services, and GKE's controllers take only
NEG-backed Services). A route filter could add the key as a header, but the key would then be
plaintext in the HTTPRoute (in state and etcd) and reach every backend of the route. So the
gateway routes the endpoint to an InferencePool of proxy pods, like any model server (same
picker: API keys, rate limits, priority, model check), and each pod:

- accepts only the task's client path (and ``/healthz``, answered locally); anything else is a
  404 in the gateway's error shape;
- removes what a client could use to act as the stack towards the provider (its own
  ``Authorization`` is overwritten; ``x-api-key``, ``api-key``, ``openai-organization``,
  ``openai-project``, cookies, forwarding and control headers are dropped);
- injects the provider key from a mounted file (``credential_injector`` with a file-based SDS
  secret, reloaded when the mounted Secret changes), so the key is never in the pod spec, an
  environment variable, a log line or a response;
- originates TLS to the provider's host, verifying its certificate against the system CA bundle
  with the host as SNI and as the required subject name, and rewrites the path to the
  provider's (``api_base`` path + the task's);
- answers in the gateway's one error shape when the provider cannot be reached (503
  ``provider-unavailable``) or times out (504 ``provider-timeout``), and turns the provider's
  401/403 (the stack's key was refused) into 502 ``provider-auth-failed`` so a client never
  mistakes it for its own credentials; other provider answers (429, 5xx, streams) pass through.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml
from endpoint_picker.errors import error_body, error_type

from ..catalog.providers import EGRESS_PORT, HEALTH_PATH, PROVIDERS, TASK_PATHS, Upstream, parse_api_base
from .routes import CONTROL_HEADERS, DEPLOYED_MODEL_HEADER

CONFIG_DIR = "/etc/envoy"
ENVOY_FILE = "envoy.yaml"
SDS_FILE = "provider-key-sds.yaml"
KEY_DIR = "/var/run/secrets/provider"
KEY_FILE_NAME = "api-key"
CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
"""The system CA bundle of Envoy's distroless image (Debian's ca-certificates layout)."""
ADMIN_PORT = 9901
"""Envoy's admin API: on the pod's loopback only, never on a pod address."""
KEY_SECRET_NAME = "provider-key"
CLUSTER = "provider"
AUTH_STATUSES = ("401", "403")

CLIENT_HEADERS_REMOVED = (
    "x-api-key", "api-key", "openai-organization", "openai-project", "anthropic-version", "anthropic-beta",
    "cookie", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "x-user-id",
    # what gateways (GKE's, the local Envoy) and this proxy would tell the provider about the stack
    "x-envoy-external-address", "x-envoy-original-path", "x-envoy-original-host", "x-envoy-internal",
    "x-envoy-decorator-operation", "x-envoy-expected-rq-timeout-ms",
    DEPLOYED_MODEL_HEADER, *CONTROL_HEADERS,
)
"""Request headers that never reach the provider. ``Authorization`` is not listed: the credential
injector overwrites it (route-level removal runs after the filters and would drop the key)."""
PROVIDER_HEADERS_REMOVED = ("set-cookie", "openai-organization", "openai-project")
"""Response headers that would tell clients about the stack's provider account."""

_LOCAL_REPLIES = (
    ("route-not-found", 404, "this endpoint serves only {path}", {"response_flag_filter": {"flags": ["NR"]}}),
    ("provider-timeout", 504, "the provider {provider} ({host}) did not answer in time",
     {"response_flag_filter": {"flags": ["UT"]}}),
    ("provider-unavailable", 503, "the provider {provider} ({host}) could not be reached (%RESPONSE_CODE_DETAILS%)",
     {"response_flag_filter": {"flags": ["UH", "UF", "UC", "UR", "URX", "LR", "UO", "UMSDR"]}}),
)


def key_file() -> str:
    return f"{KEY_DIR}/{KEY_FILE_NAME}"


def upstream(external) -> Upstream:
    return parse_api_base(external.base_url)


def _san(host: str) -> dict[str, Any]:
    try:
        ipaddress.ip_address(host)
        return {"san_type": "IP_ADDRESS", "matcher": {"exact": host}}
    except ValueError:
        return {"san_type": "DNS", "matcher": {"exact": host}}


def auth_failure_body(endpoint: str, provider: str) -> str:
    """What a client gets when the provider refused the stack's key (never the provider's own
    body: providers echo parts of the key they refused)."""
    message = (f"the provider {provider} refused the API key of endpoint {endpoint!r}; the endpoint's provider key "
               "(models[].external.api_key_secret) must be replaced by its owner")
    return error_body(502, "provider-auth-failed", message).decode()


def lua_auth_filter(endpoint: str, provider: str) -> str:
    """Envoy Lua: a provider 401/403 -> 502 ``provider-auth-failed`` with the provider's status in
    ``x-provider-status``. Other responses are not buffered."""
    body = auth_failure_body(endpoint, provider)
    statuses = " or ".join(f'status == "{s}"' for s in AUTH_STATUSES)
    return (
        f"local BODY = [==[{body}]==]\n"
        "function envoy_on_response(handle)\n"
        '  local status = handle:headers():get(":status")\n'
        f"  if {statuses} then\n"
        '    handle:headers():replace(":status", "502")\n'
        '    handle:headers():replace("content-type", "application/json")\n'
        '    handle:headers():replace("x-provider-status", status)\n'
        '    handle:headers():remove("content-length")\n'
        "    local buffered = handle:body(true)\n"
        "    if buffered ~= nil then\n"
        "      buffered:setBytes(BODY)\n"
        "    end\n"
        "  end\n"
        "end\n"
    )


def _mapper(code: str, status: int, message: str, flt: dict[str, Any]) -> dict[str, Any]:
    body = {"error": {"message": message, "type": error_type(status), "param": None, "code": code}}
    return {"filter": flt, "status_code": status,
            "body_format_override": {"json_format": body, "content_type": "application/json"}}


def envoy_config(name: str, endpoint: str, external, *, sds_path: str | None = None) -> dict[str, Any]:
    """The proxy's Envoy bootstrap (mounted from the ConfigMap at ``/etc/envoy/envoy.yaml``).
    ``name``: the proxy's Deployment; ``endpoint``: the served model's name; ``external``: its
    ``ExternalModelConfig``."""
    up = upstream(external)
    provider = PROVIDERS[external.provider]
    client_path = TASK_PATHS[external.task]
    words = {"path": f"POST {client_path}", "provider": external.provider, "host": up.authority}
    route = {
        "match": {"path": client_path},
        "route": {
            "cluster": CLUSTER,
            "prefix_rewrite": up.path(external.task),
            "host_rewrite_literal": up.authority,
            "timeout": f"{external.timeout_seconds}s",
            # Only failures before the provider saw the request: a retried POST is never billed twice.
            "retry_policy": {"retry_on": "connect-failure,refused-stream", "num_retries": 2},
        },
    }
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "egress",
        "codec_type": "AUTO",
        "normalize_path": True,
        "merge_slashes": True,
        "access_log": [{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                # No headers: the request's own Authorization and the injected key never reach a log.
                "log_format": {"json_format": {
                    "start": "%START_TIME%", "method": "%REQ(:METHOD)%", "path": "%REQ(:PATH)%",
                    "status": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "details": "%RESPONSE_CODE_DETAILS%",
                    "duration_ms": "%DURATION%", "upstream": "%UPSTREAM_HOST%", "request_id": "%REQ(X-REQUEST-ID)%",
                }},
            },
        }],
        "route_config": {
            "name": "provider",
            "virtual_hosts": [{
                "name": "provider",
                "domains": ["*"],
                "request_headers_to_remove": list(CLIENT_HEADERS_REMOVED),
                "response_headers_to_remove": list(PROVIDER_HEADERS_REMOVED),
                "routes": [
                    {"match": {"path": HEALTH_PATH}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}},
                    route,
                ],
            }],
        },
        "local_reply_config": {"mappers": [_mapper(c, s, m.format(**words), f) for c, s, m, f in _LOCAL_REPLIES]},
        "http_filters": [
            {"name": "envoy.filters.http.lua", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": lua_auth_filter(endpoint, external.provider)}}},
            {"name": "envoy.filters.http.credential_injector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector",
                "overwrite": True,
                "allow_request_without_credential": False,
                "credential": {"name": "envoy.http.injected_credentials.generic", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic",
                    "header": provider.auth_header,
                    "header_value_prefix": provider.auth_prefix,
                    "credential": {"name": KEY_SECRET_NAME, "sds_config": {"path_config_source": {
                        "path": sds_path or f"{CONFIG_DIR}/{SDS_FILE}",
                        # The mounted Secret changes by an atomic symlink swap in this directory.
                        "watched_directory": {"path": KEY_DIR}}}},
                }},
            }},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                "suppress_envoy_headers": True}},
        ],
    }
    cluster = {
        "name": CLUSTER,
        "type": "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": up.host, "port_value": up.port}}}}]}]},
        "circuit_breakers": {"thresholds": [{"max_connections": 4096, "max_pending_requests": 4096, "max_requests": 4096}]},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "auto_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": up.host,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "validation_context": {"trusted_ca": {"filename": CA_FILE}, "match_typed_subject_alt_names": [_san(up.host)]},
            },
        }},
    }
    return {
        "node": {"id": name, "cluster": name},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}},
        "static_resources": {
            "listeners": [{
                "name": "egress",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": EGRESS_PORT}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
            }],
            "clusters": [cluster],
        },
    }


def sds_config(key_path: str | None = None) -> dict[str, Any]:
    """The file-based SDS resource naming the mounted key file (a generic secret)."""
    return {"resources": [{
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": KEY_SECRET_NAME,
        "generic_secret": {"secret": {"filename": key_path or key_file()}},
    }]}


def configmap(name: str, namespace: str, labels: dict[str, str], endpoint: str, external) -> dict[str, Any]:
    """ConfigMap ``<name>`` with the proxy's ``envoy.yaml`` and its key SDS file (no secret in it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": {
            ENVOY_FILE: yaml.safe_dump(envoy_config(name, endpoint, external), sort_keys=False),
            SDS_FILE: yaml.safe_dump(sds_config(), sort_keys=False),
        },
    }


def config_digest(data: dict[str, str]) -> str:
    """Changes with the ConfigMap's content: a pod template annotation, so a new config rolls the pods."""
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
