"""Abuse suite: issue #14's reproductions, replayed as a hostile client through `igw up` and real
Envoy, each asserting the secure outcome (the before/after table is in the closing note).

Session stack (tests/e2e/conftest.py `local_stack`, no API keys, food-review limited to 600 calls
per minute per user): exposed surface, control headers, identity, served-model accounting,
unknown deployed ids, path normalisation, error shapes. Keyed stack (`keyed_stack` below: the
local stack with API keys from IGW_API_KEYS and a 5/min limit): 401s and per-key identities.

Every error a client gets is checked against the one shape: the OpenAI error object
`{"error": {"message", "type", "param", "code"}}` with a stable kebab-case `code`.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import socket
import time
from typing import Any

import httpx
import pytest

from .conftest import BASE_MODEL, run_load

CHAT = "/v1/chat/completions"
CRITICAL_OBJECTIVE = "meta-llama-llama-3.1-8b-instruct"
ERROR_TYPES = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error", "timeout_error",
               "rate_limit_error", "server_error", "service_unavailable_error"}


def body(model: str | None = "food-review", text: str = "hi") -> dict[str, Any]:
    return {**({"model": model} if model else {}), "messages": [{"role": "user", "content": text}], "max_tokens": 1}


def error_of(status: int, payload: bytes | str, code: str) -> dict[str, Any]:
    """The gateway's one error shape, with this code."""
    err = json.loads(payload)["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["code"] == code and err["param"] is None and err["message"], err
    assert err["type"] in ERROR_TYPES, err
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", err["code"]), err
    return err


def raw(port: int, request: bytes, timeout: float = 10) -> tuple[str, dict[str, str], bytes]:
    """One request written byte for byte (no client-side path normalisation): status line,
    headers, de-chunked body."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(request)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, pos = b"", 0
        while True:
            size_end = rest.index(b"\r\n", pos)
            size = int(rest[pos:size_end], 16)
            if size == 0:
                break
            out += rest[size_end + 2:size_end + 2 + size]
            pos = size_end + 2 + size + 2
        rest = out
    return lines[0], headers, rest


def get(port: int, path: str, version: str = "HTTP/1.1", host: bool = True) -> tuple[str, dict[str, str], bytes]:
    request = f"GET {path} {version}\r\n" + ("host: gateway\r\n" if host else "") + "connection: close\r\n\r\n"
    return raw(port, request.encode())


# -- 1. exposed surface by allow-list ----------------------------------------------------------------
ADMIN = [
    ("GET", "/metrics"), ("GET", "/health"), ("GET", "/version"), ("POST", "/tokenize"), ("GET", "/sim/state"),
    ("POST", "/sim/control"), ("POST", "/v1/load_lora_adapter"), ("POST", "/v1/unload_lora_adapter"),
    ("POST", "/reset_prefix_cache"), ("POST", "/sleep"), ("POST", "/start_profile"),
    ("GET", "/invoke/metrics"), ("POST", "/invoke/v1/unload_lora_adapter"), ("GET", "/invoke/sim/state"),
    ("POST", "/invoke/sim/control"), ("GET", "/invoke"), ("GET", "/invoke/"), ("GET", "/"),
]


@pytest.mark.parametrize("method, path", ADMIN)
def test_admin_and_internal_paths_are_not_routed(local_stack, method, path):
    r = local_stack.http.request(method, local_stack.url + path,
                                 json={"model": "cad-fabricator", "lora_name": "cad-fabricator", "lora_path": "x", "stall_now": True})
    assert r.status_code == 404, (path, r.text)
    assert r.headers["content-type"] == "application/json"
    error_of(404, r.content, "route-not-found")


def test_adapter_unload_through_the_gateway_leaves_every_replica_serving_it(local_stack):
    """Before: POST /v1/unload_lora_adapter unloaded cad-fabricator from one replica and prefix
    affinity kept sending that adapter's traffic there (404s)."""
    for path in ("/v1/unload_lora_adapter", "/invoke/v1/unload_lora_adapter", "/invoke/../v1/unload_lora_adapter"):
        status, _, payload = raw(local_stack.port, (
            f"POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\nconnection: close\r\n"
            'content-length: 52\r\n\r\n{"model": "cad-fabricator", "lora_name": "cad-fabric"}').encode())
        assert status.startswith("HTTP/1.1 404"), (path, status)
        error_of(404, payload, "route-not-found")
    pods = [p["name"] for p in local_stack.procs("simulator")]
    for pod in pods:
        assert "cad-fabricator" in local_stack.sim_state(pod)["loaded_lora_adapters"], pod
    client = local_stack.client_for("abuse-affinity")
    same_prefix = "Design a bracket. " * 40
    for i in range(20):
        r = client.chat.completions.with_raw_response.create(
            model="cad-fabricator", messages=[{"role": "user", "content": same_prefix + str(i)}], max_tokens=1)
        assert r.status_code == 200


# -- 2. control headers belong to the gateway -----------------------------------------------------------
def test_client_objective_headers_and_bypass_bodies_cannot_raise_priority(local_stack):
    """Before: a client-sent x-gateway-inference-objective (or x-llm-d-inference-objective) naming
    the Critical objective got 5/5 Sheddable requests served at saturation (5/5 429 without)."""
    pods = [p["name"] for p in local_stack.procs("simulator")]
    for pod in pods:
        local_stack.http.post(local_stack.sim_url(pod) + "/sim/control", json={"stall_now": True, "stall_seconds": 4})
    burst_client = local_stack.client_for("abuse-burst", timeout=60)
    ex = cf.ThreadPoolExecutor(48)
    attempts = {
        "plain": ({}, "cad-fabricator", CHAT),
        "x-gateway-inference-objective": ({"x-gateway-inference-objective": CRITICAL_OBJECTIVE}, "cad-fabricator", CHAT),
        "x-llm-d-inference-objective": ({"x-llm-d-inference-objective": CRITICAL_OBJECTIVE}, "cad-fabricator", CHAT),
        "critical body on the sheddable served-model path": ({}, BASE_MODEL, "/served-models/cad-fabricator/invocations"),
        "critical body with x-deployed-model-id": ({"x-deployed-model-id": "cad-fabricator"}, BASE_MODEL, CHAT),
        "destination header": ({"x-gateway-destination-endpoint": local_stack.sim_url(pods[0])[7:]}, "cad-fabricator", CHAT),
    }
    try:
        burst = [ex.submit(burst_client.chat.completions.create, model=BASE_MODEL, max_tokens=1,
                           messages=[{"role": "user", "content": f"b{i}"}]) for i in range(40)]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            waiting = [local_stack.sim_state(p)["waiting"] for p in pods]
            if sum(waiting) / len(waiting) >= 6:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        http = local_stack.http_for("abuse-shed")
        outcomes = {name: [http.post(local_stack.url + path, json=body(model), headers=headers) for _ in range(5)]
                    for name, (headers, model, path) in attempts.items()}
    finally:
        for pod in pods:
            local_stack.http.post(local_stack.sim_url(pod) + "/sim/control", json={"unstall": True})
        ex.shutdown(wait=True, cancel_futures=True)
    for name, responses in outcomes.items():
        assert [r.status_code for r in responses] == [429] * 5, (name, [r.text for r in responses])
        for r in responses:
            assert r.headers["x-llm-d-request-dropped-reason"] == "rejected-saturated"
            error_of(429, r.content, "rejected-saturated")
    assert all(f.result().choices for f in burst)


# -- 3. identity you can trust; limits follow the served model ----------------------------------------------
def test_rate_limit_cannot_be_evaded(local_stack):
    """Before: after exhausting food-review's 600/min, a fresh x-user-id, a spoofed first
    X-Forwarded-For, /served-models/current/invocations with another body model, x-deployed-model-id
    on /invoke, and the internal target food-review-v2 were each served (200).

    The bucket refills one call per 100 ms, so each evasion is a burst of 20 right after the
    bucket is drained: sharing the user's bucket lets only the refill during the burst through,
    evading it would let all 20 through."""
    user = f"abuse-victim-{time.monotonic_ns()}"
    http = local_stack.http_for(user, limits=httpx.Limits(max_connections=32))

    def send(path: str = CHAT, payload: dict | None = None, headers: dict | None = None) -> httpx.Response:
        return http.post(local_stack.url + path, json=payload or body(), headers={"x-user-id": user, **(headers or {})})

    def drain() -> list[int]:
        codes: list[int] = []
        deadline = time.monotonic() + 90
        while 429 not in codes[-32:] and len(codes) < 2000 and time.monotonic() < deadline:
            codes += run_load(lambda i: send().status_code, 100, concurrency=32, timeout=60)
        return codes

    codes = drain()
    assert 429 in codes and codes.count(200) >= 600, (codes.count(200), codes.count(429))
    evasions = {
        "fresh x-user-id": (CHAT, body(), {"x-user-id": "fresh-" + user}),
        "spoofed first X-Forwarded-For": (CHAT, body(), {"x-forwarded-for": "203.0.113.7"}),
        "spoofed X-Forwarded-For chain": (CHAT, body(), {"x-forwarded-for": "203.0.113.7, 198.51.100.9"}),
        "served-model path, other body model": ("/served-models/current/invocations", body("not-food-review"), {}),
        "served-model path of the challenger": ("/served-models/challenger/invocations", body(BASE_MODEL), {}),
        "x-deployed-model-id on /invoke": ("/invoke" + CHAT, body("whatever"), {"x-deployed-model-id": "current"}),
        "x-deployed-model-id challenger": (CHAT, body(BASE_MODEL), {"x-deployed-model-id": "challenger"}),
        "internal target name": (CHAT, body("food-review-v2"), {}),
        "internal target name on /invoke": ("/invoke" + CHAT, body("food-review-v2"), {}),
    }
    for name, (path, payload, headers) in evasions.items():
        drain()
        burst = run_load(lambda i: send(path, payload, headers), 20, concurrency=20, timeout=30)
        served = [r for r in burst if r.status_code == 200]
        limited = [r for r in burst if r.status_code == 429]
        assert len(limited) + len(served) == 20, (name, [r.status_code for r in burst])
        # a bucket of its own would serve all 20; the shared one serves only its refill (1/100 ms)
        assert len(limited) >= 10, (name, len(served))
        assert limited[0].headers["x-llm-d-request-dropped-reason"] == "rate-limited"
        assert int(limited[0].headers["retry-after"]) >= 1
        error_of(429, limited[0].content, "rate-limited")
    # the limit is per user and per served model
    assert send(payload=body(BASE_MODEL)).status_code == 200
    assert local_stack.http_for(user + "-other").post(local_stack.url + CHAT, json=body()).status_code == 200


@pytest.mark.parametrize("path", ["/invoke" + CHAT, CHAT])
def test_unknown_deployed_model_id_is_404_with_a_reason(local_stack, path):
    """Before: an unknown x-deployed-model-id was served through the normal split (200)."""
    r = local_stack.http.post(local_stack.url + path, json=body(), headers={"x-deployed-model-id": "no-such-model"})
    assert r.status_code == 404 and r.headers["x-llm-d-request-dropped-reason"] == "deployed-model-not-found"
    err = error_of(404, r.content, "deployed-model-not-found")
    assert err["type"] == "not_found_error"
    assert err["message"] == ("x-deployed-model-id 'no-such-model' is not deployed behind this endpoint "
                              "(deployed: cad-fabricator, challenger, current, meta-llama-llama-3-1-8b-instruct)")
    tag = f"deployed-{time.monotonic_ns()}"
    ok = local_stack.http.post(local_stack.url + path, json=body(), headers={"x-deployed-model-id": "challenger", "x-user-id": tag})
    assert ok.status_code == 200 and ok.json()["model"] == "food-review"
    (row,) = local_stack.access_log(lambda r: r["user"] == tag, 1)
    assert row["model"] == "food-review-v2"


# -- 4. paths normalised before matching -------------------------------------------------------------------
@pytest.mark.parametrize("path, status, upstream", [
    ("/invoke/../v1/models", 200, "/v1/models"),       # before: reached the server as /../v1/models
    ("/v1/./models", 200, "/v1/models"),
    ("/invoke/../metrics", 404, None),
    ("/invoke/%2e%2e/metrics", 404, None),
    ("/invoke/v1/models/../../../sim/state", 404, None),
    ("//metrics", 404, None),
    ("/invoke//metrics", 404, None),
    ("/v1//models/../../metrics", 404, None),
])
def test_paths_are_normalised_before_matching(local_stack, path, status, upstream):
    tag = f"path-{time.monotonic_ns()}"
    line, headers, payload = raw(local_stack.port, f"GET {path} HTTP/1.1\r\nhost: gateway\r\nx-user-id: {tag}\r\n"
                                                   "connection: close\r\n\r\n".encode())
    assert line.split()[1] == str(status), (path, line, payload[:200])
    if status == 404:
        error_of(404, payload, "route-not-found")
        return
    (row,) = local_stack.access_log(lambda r: r["user"] == tag, 1)
    assert row["upstream_path"] == upstream and row["path"] == upstream


def test_escaped_slashes_are_redirected_to_the_normal_path(local_stack):
    line, headers, _ = get(local_stack.port, "/invoke/v1%2Fmodels")
    assert line.split()[1] == "307" and headers["location"] == "/invoke/v1/models"


# -- 5. one error shape -----------------------------------------------------------------------------------
def test_gateway_replies_are_json_in_one_shape(local_stack):
    """Before: 413 'Payload Too Large' text, 426 'Upgrade Required' for HTTP/1.0, empty or
    model-server-shaped 404s, and the picker's {"error": {code: 400, reason, message}}."""
    big = b"x" * (20 << 20)
    line, headers, payload = raw(local_stack.port, b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
                                 b"content-type: application/json\r\nconnection: close\r\n"
                                 + f"content-length: {len(big)}\r\n\r\n".encode() + big)
    assert line.split()[1] == "413"
    error_of(413, payload, "body-too-large")
    line, headers, payload = get(local_stack.port, "/nothing-here")
    assert line.split()[1] == "404" and headers["content-type"] == "application/json"
    error_of(404, payload, "route-not-found")
    line, _, payload = get(local_stack.port, "/v1/models#fragment")
    assert line.split()[1] == "400"
    error_of(400, payload, "bad-request")
    r = local_stack.http.post(local_stack.url + CHAT, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    error_of(400, r.content, "bad-request")
    r = local_stack.http.post(local_stack.url + CHAT, json={"messages": []})
    assert r.status_code == 400
    error_of(400, r.content, "missing-model")


def test_http_1_0_is_accepted(local_stack):
    line, _, payload = get(local_stack.port, "/v1/models", version="HTTP/1.0", host=False)
    assert line.startswith("HTTP/1.0 200"), line
    assert BASE_MODEL in {m["id"] for m in json.loads(payload)["data"]}
    line, _, payload = get(local_stack.port, "/metrics", version="HTTP/1.0", host=False)
    assert line.startswith("HTTP/1.0 404")
    error_of(404, payload, "route-not-found")


def test_gateway_replies_for_upstream_failures_are_json():
    """Envoy's own 503/504s with the local gateway's edge config (igw/local/edge.py): a backend that
    refuses connections (upstream-reset), one that never answers past the route timeout
    (upstream-timeout), a pool without endpoints (no-healthy-upstream). Before: plain text."""
    from endpoint_picker.testing.envoy import EnvoyProcess

    from igw.local import edge

    from igw.local.process import free_port

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts (the kernel does) and never answers
    refused = free_port()
    port = free_port()

    def cluster(name: str, ports: list[int]) -> dict[str, Any]:
        eps = [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}} for p in ports]
        return {"name": name, "type": "STATIC", "connect_timeout": "0.5s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": eps}] if eps else []}}

    routes = [{"match": {"path": "/refused"}, "route": {"cluster": "refused"}},
              {"match": {"path": "/silent"}, "route": {"cluster": "silent", "timeout": "0.5s"}},
              {"match": {"path": "/empty"}, "route": {"cluster": "empty"}}]
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "edge", "route_config": {"virtual_hosts": [{"name": "a", "domains": ["*"], "routes": routes}]},
           "http_filters": [{"name": "envoy.filters.http.router",
                             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
           **edge.hcm_options()}
    bootstrap = {"static_resources": {
        "listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}],
        "clusters": [cluster("refused", [refused]), cluster("silent", [silent.getsockname()[1]]), cluster("empty", [])]}}
    envoy = EnvoyProcess(bootstrap, port)
    try:
        with httpx.Client(timeout=10) as http:
            for path, status, code in (("/refused", 503, "upstream-reset"), ("/silent", 504, "upstream-timeout"),
                                       ("/empty", 503, "no-healthy-upstream"), ("/elsewhere", 404, "route-not-found")):
                r = http.get(f"http://127.0.0.1:{port}{path}")
                assert r.status_code == status and r.headers["content-type"] == "application/json", (path, r.text)
                error_of(status, r.content, code)
    finally:
        envoy.stop()
        silent.close()


def test_model_server_errors_share_the_envelope(local_stack):
    """The model server's own errors pass through; vLLM's use the same envelope (its `code` is
    the HTTP status as a number)."""
    r = local_stack.http.post(local_stack.url + CHAT, json={"model": "food-review", "messages": "not a list"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == 400


# -- 6. API keys locally: 401s and per-key identities ----------------------------------------------------
KEYS = {"k-alice-0123456789": "alice", "k-bob-0123456789": "bob"}


def _keys_mapping() -> str:
    import hashlib

    return "".join(f"{hashlib.sha256(k.encode()).hexdigest()}: {u}\n" for k, u in KEYS.items())


def _keyed_stacks_dir(tmp_path) -> str:
    from .conftest import ROOT

    src = (ROOT / "stacks" / "Pulumi.local.yaml").read_text()
    # The stack's apiKeys is a Pulumi secret (a placeholder: an offline render masks it anyway).
    new = (src.replace("config:\n", "config:\n  inference-gateway:apiKeys:\n    secure: v1:cGxhY2Vob2xkZXI=\n", 1)
              .replace("      replicas: 4\n", "      replicas: 2\n")
              .replace("      failure_mode: FailOpen\n", "      failure_mode: FailOpen\n      picker: {api_keys: true}\n")
              .replace("{calls: 600, key: user, renewal_period: minute}", "{calls: 5, key: user, renewal_period: minute}"))
    assert new.count("api_keys: true") == 1 and "calls: 5," in new and "replicas: 2" in new
    d = tmp_path / "stacks"
    d.mkdir(exist_ok=True)
    (d / "Pulumi.local.yaml").write_text(new)
    return str(d)


def _igw(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    full = {k: v for k, v in os.environ.items() if k != "IGW_API_KEYS"}
    return subprocess.run([sys.executable, "-m", "igw.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**full, **(env or {})})


@pytest.fixture(scope="module")
def keyed_stack(tmp_path_factory):
    """The local stack with API keys on its pool (keys from IGW_API_KEYS), food-review limited to
    5 calls per minute per user, two replicas, on its own addresses and port."""
    import os
    import signal

    from igw.local.process import free_port

    from .conftest import ADDRESS_BASE, LocalStack, pid_alive

    tmp = tmp_path_factory.mktemp("igw-keyed")
    stacks = _keyed_stacks_dir(tmp)
    state = tmp / "state"
    port = int(os.environ["IGW_E2E_PORT"]) + 1 if os.environ.get("IGW_E2E_PORT") else free_port()
    base = ADDRESS_BASE.rsplit(".", 1)[0] + ".30"
    r = _igw("up", "--stack", "local", "--stacks-dir", stacks, "--detach", "--port", str(port), "--state-dir", str(state),
             "--address-base", base, "--time-scale", "0.05", env={"IGW_API_KEYS": _keys_mapping()})
    assert r.returncode == 0, r.stdout + r.stderr
    stack = LocalStack(state, port, ["--stack", "local", "--stacks-dir", stacks])
    stack.stacks_dir = stacks
    try:
        yield stack
    finally:
        st = stack.state()
        pids = [p["pid"] for p in st["processes"].values()] + [st["supervisor_pid"]]
        d = _igw("down", "--stack", "local", "--state-dir", str(state))
        stack.http.close()
        for pid in pids:
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        assert d.returncode == 0, d.stdout + d.stderr
        assert not (state / "api-keys.yaml").exists()  # the keys leave with the stack


def keyed(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


@pytest.mark.parametrize("headers", [{}, keyed("wrong"), {"authorization": "Basic YWxpY2U6eA=="}, keyed("k-alice")])
def test_a_keyed_pool_answers_401_without_a_known_key(keyed_stack, headers):
    """Before: API keys could not run locally (a bad key got 200, with a warning)."""
    r = keyed_stack.http.post(keyed_stack.url + CHAT, json=body(BASE_MODEL), headers=headers)
    assert r.status_code == 401 and r.headers["x-llm-d-request-dropped-reason"] == "unauthorized"
    assert error_of(401, r.content, "unauthorized")["type"] == "authentication_error"
    ok = keyed_stack.http.post(keyed_stack.url + CHAT, json=body(BASE_MODEL), headers=keyed("k-bob-0123456789"))
    assert ok.status_code == 200


def test_per_key_limits_hold_across_addresses_paths_and_names(keyed_stack):
    alice, bob = keyed("k-alice-0123456789"), keyed("k-bob-0123456789")
    http = keyed_stack.http_for("keyed-alice")
    assert [http.post(keyed_stack.url + CHAT, json=body(), headers=alice).status_code for _ in range(5)] == [200] * 5
    attempts = {
        "again": (CHAT, body(), alice),
        "from another address": (CHAT, body(), alice, "keyed-alice-2"),
        "fresh x-user-id": (CHAT, body(), {**alice, "x-user-id": "someone-else"}),
        "served-model path": ("/served-models/challenger/invocations", body(BASE_MODEL), alice),
        "x-deployed-model-id": ("/invoke" + CHAT, body("x"), {**alice, "x-deployed-model-id": "current"}),
        "internal target name": (CHAT, body("food-review-v2"), alice),
    }
    for name, (path, payload, headers, *who) in attempts.items():
        client = keyed_stack.http_for(who[0]) if who else http
        r = client.post(keyed_stack.url + path, json=payload, headers=headers)
        assert r.status_code == 429, (name, r.status_code, r.text)
        error_of(429, r.content, "rate-limited")
    assert http.post(keyed_stack.url + CHAT, json=body(), headers=bob).status_code == 200  # bob's own bucket


def test_igw_up_refuses_a_keyed_stack_without_keys(keyed_stack, tmp_path):
    r = _igw("up", "--stack", "local", "--stacks-dir", keyed_stack.stacks_dir, "--state-dir", str(tmp_path / "s"),
             "--port", "1", "--address-base", "127.0.0.250")
    assert r.returncode == 1
    assert ("error: pool 'vllm-llama3-8b-instruct' requires API keys (pools[].picker.api_keys); give them with "
            "--api-keys-file FILE or IGW_API_KEYS: a YAML/JSON mapping of sha256(key) hex -> user, the format of the "
            "secret config value apiKeys") in r.stderr
    bad = _igw("up", "--stack", "local", "--stacks-dir", keyed_stack.stacks_dir, "--state-dir", str(tmp_path / "s"),
               "--port", "1", env={"IGW_API_KEYS": "alice: plaintext-key\n"})
    assert bad.returncode == 1
    assert "error: API keys: api keys file the given mapping: not a sha256 hex digest: alice..." in bad.stderr


def test_dead_replicas_are_answered_in_the_error_shape(keyed_stack):
    """Every replica of the keyed stack killed at once: the request that meets it gets a 503 in
    the one shape (Envoy's reset or no-healthy-upstream, or the picker's no-endpoints), and the
    stack serves again once the supervisor has restarted them. Runs last: it breaks the stack."""
    import os
    import signal

    key = keyed("k-bob-0123456789")
    for p in keyed_stack.procs("simulator"):
        os.kill(p["pid"], signal.SIGKILL)
    r = keyed_stack.http.post(keyed_stack.url + CHAT, json=body(BASE_MODEL), headers=key)
    assert r.status_code == 503 and r.headers["content-type"] == "application/json", r.text
    code = json.loads(r.content)["error"]["code"]
    assert code in {"upstream-reset", "no-healthy-upstream", "rejected-no-endpoints", "upstream-unavailable"}, r.text
    error_of(503, r.content, code)
    deadline = time.monotonic() + 60
    while keyed_stack.http.post(keyed_stack.url + CHAT, json=body(BASE_MODEL), headers=key).status_code != 200:
        assert time.monotonic() < deadline, "the keyed stack did not recover after its replicas were restarted"
        time.sleep(0.5)
