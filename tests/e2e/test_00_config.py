"""The local plan and the Envoy config it generates (pure; no processes): route translation,
FailOpen/FailClose, weighted pools, timeouts, vLLM args → simulator args."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from igw.local import edge, envoy as E
from igw.local.plan import build_plan
from igw.local.plan_replicas import sim_args
from igw.local.rendered_objects import PlanError

POOL_GROUP = "inference.networking.k8s.io"


def pool(name: str, failure_mode: str = "FailOpen", picker: dict | None = None) -> list[dict]:
    objs = [
        {"apiVersion": f"{POOL_GROUP}/v1", "kind": "InferencePool", "metadata": {"name": name, "namespace": "default"},
         "spec": {"selector": {"matchLabels": {"app": name}}, "targetPorts": [{"number": 8000}],
                  "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}, "failureMode": failure_mode}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-epp", "namespace": "default"},
         "data": {"picker.yaml": yaml.safe_dump(picker or {})}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
         "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [
             {"name": "vllm", "args": ["--model", "m", "--port", "8000", "--max-loras", "2"],
              "ports": [{"containerPort": 8000}]}]}}}},
    ]
    return objs


def gateway(*rules: dict, timeouts: dict | None = None) -> list[dict]:
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"gatewayClassName": "x", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "gw"}], "rules": list(rules)}},
    ]


def to(pool_name: str, weight: int | None = None) -> dict:
    ref = {"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name}
    if weight is not None:
        ref["weight"] = weight
    return ref


def routes(objs: list[dict]) -> list[dict]:
    plan = build_plan(objs)
    return E.route_config(plan.listeners[0], plan)["virtual_hosts"][-1]["routes"]


def ext_procs(objs: list[dict]) -> dict[str, dict]:
    plan = build_plan(objs)
    lst = E.listener(plan.listeners[0], plan, Path("/x"), "127.0.0.1")
    filters = lst["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    return {f["name"]: f for f in filters if f["name"].startswith("igw.ext_proc.")}


def test_failure_modes_map_to_failure_mode_allow_and_body_modes():
    objs = pool("open", "FailOpen") + pool("closed", "FailClose") + gateway({"backendRefs": [to("open")]})
    f = ext_procs(objs)
    open_, closed = f["igw.ext_proc.open"], f["igw.ext_proc.closed"]
    assert open_["typed_config"]["failure_mode_allow"] is True
    assert closed["typed_config"]["failure_mode_allow"] is False
    # Envoy keeps request bodies and response chunks until the picker answered them, so it can go
    # on without a dead or frozen picker, and the message timeout bounds a frozen one.
    for f in (open_, closed):
        mode = f["typed_config"]["processing_mode"]
        assert (mode["request_body_mode"], mode["response_body_mode"]) == ("BUFFERED", "STREAMED")
        assert (mode["response_header_mode"], mode["response_trailer_mode"]) == ("SKIP", "SKIP")
        assert f["typed_config"]["message_timeout"] == "1.0s"  # no annotation: GKE's callout default
    assert open_["disabled"] and closed["disabled"]  # enabled per route
    assert open_["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == "picker.open"
    plan = build_plan(objs)
    for name in ("open", "closed"):
        ext = plan.pools[name].local_picker_config()["ext_proc"]
        assert (ext["request_body_mode"], ext["response_body_mode"]) == ("BUFFERED", "STREAMED")


def test_the_pool_annotation_sets_the_message_timeout_and_a_bad_one_is_refused():
    objs = pool("p") + gateway({"backendRefs": [to("p")]})
    objs[0]["metadata"]["annotations"] = {"inference-gateway.dev/picker-message-timeout": "250ms"}
    assert ext_procs(objs)["igw.ext_proc.p"]["typed_config"]["message_timeout"] == "0.25s"
    objs[0]["metadata"]["annotations"]["inference-gateway.dev/picker-message-timeout"] = "fast"
    with pytest.raises(PlanError, match="bad duration 'fast'"):
        build_plan(objs)


def test_picker_failures_on_failclose_pools_answer_a_json_503():
    """ext_proc's own replies (500 gRPC error, 504 message timeout) become the gateway's JSON 503;
    the mapper matches on ext_proc's response code details only, before the edge's mappers."""
    plan = build_plan(pool("p", "FailClose") + gateway({"backendRefs": [to("p")]}))
    hcm = E.listener(plan.listeners[0], plan, Path("/x"), "127.0.0.1")["filter_chains"][0]["filters"][0]["typed_config"]
    first = hcm["local_reply_config"]["mappers"][0]
    assert first == edge.picker_failure_reply()
    assert first["status_code"] == 503
    assert first["filter"]["extension_filter"]["typed_config"]["expression"] == "response.code_details.startsWith('ext_proc_error')"
    body = first["body_format_override"]["json_format"]["error"]
    assert (body["code"], body["type"]) == ("picker-unavailable", "service_unavailable_error")
    assert {h["header"]["key"]: h["header"]["value"] for h in first["headers_to_add"]} == {
        "x-llm-d-request-dropped-reason": "picker-unavailable", "retry-after": "1"}


def test_the_picker_deployment_gives_replicas_leader_election_and_probes():
    objs = pool("p") + gateway({"backendRefs": [to("p")]})
    objs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p-epp", "namespace": "default"},
                 "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "p-epp"}}, "spec": {
                     "terminationGracePeriodSeconds": 130, "containers": [{
                         "name": "epp", "args": ["--pool-name", "p", "--ha-enable-leader-election", "--ha-lease-duration", "6",
                                                 "--ha-retry-period", "1"],
                         "livenessProbe": {"grpc": {"port": 9003, "service": "liveness"}, "periodSeconds": 5,
                                           "timeoutSeconds": 2, "failureThreshold": 3, "terminationGracePeriodSeconds": 5},
                         "readinessProbe": {"grpc": {"port": 9003, "service": "readiness"}, "periodSeconds": 2,
                                            "failureThreshold": 2}}]}}}})
    spec = build_plan(objs).pools["p"].picker
    assert spec.replicas == 2 and spec.leader_election
    assert spec.leader_election_args == ("--ha-enable-leader-election", "--ha-lease-duration", "6", "--ha-retry-period", "1")
    assert (spec.liveness.period_s, spec.liveness.timeout_s, spec.liveness.failure_threshold) == (5, 2, 3)
    assert spec.liveness_kill_grace_s == 5 and spec.termination_grace_s == 130
    assert (spec.readiness.service, spec.readiness.period_s, spec.readiness.timeout_s, spec.readiness.failure_threshold) == (
        "readiness", 2, 1, 2)
    # Without a picker Deployment: one picker, no election.
    assert build_plan(pool("q") + gateway({"backendRefs": [to("q")]})).pools["q"].picker.replicas == 1


def test_a_route_enables_its_pools_picker_and_falls_back_to_ready_pods():
    objs = pool("p") + gateway({"backendRefs": [to("p")]})
    (r,) = routes(objs)
    assert r["route"]["cluster"] == "pool.p"
    assert "igw.ext_proc.p" in r["typed_per_filter_config"]
    plan = build_plan(objs)
    clusters = {c["name"]: c for c in E.clusters(plan, Path("/x"))}
    lb = clusters["pool.p"]["load_balancing_policy"]["policies"][0]["typed_extension_config"]
    assert lb["name"] == "envoy.load_balancing_policies.override_host"
    fallback = lb["typed_config"]["fallback_policy"]["policies"][0]["typed_extension_config"]["name"]
    assert fallback == "envoy.load_balancing_policies.round_robin"
    assert clusters["picker.p"]["type"] == "EDS"
    la = E.load_assignment("p", ["127.0.0.1:9002"], "picker.p")
    assert la["cluster_name"] == "picker.p"
    assert la["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 9002
    retry = r["route"]["retry_policy"]
    assert "connect-failure" in retry["retry_on"] and "reset" in retry["retry_on"].split(",")


def test_weighted_backends_between_pools_each_use_their_own_picker():
    objs = pool("blue") + pool("green", "FailClose") + gateway({"backendRefs": [to("blue", 80), to("green", 20)]})
    (r,) = routes(objs)
    wc = r["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in wc] == [("pool.blue", 80), ("pool.green", 20)]
    assert list(wc[0]["typed_per_filter_config"]) == ["igw.ext_proc.blue"]
    assert list(wc[1]["typed_per_filter_config"]) == ["igw.ext_proc.green"]


def _rewrite(r: dict, path: str) -> str:
    rr = r["route"]["regex_rewrite"]
    sub = re.sub(r"\\(\d)", r"\\g<\1>", rr["substitution"])
    return re.sub(rr["pattern"]["regex"], lambda m: m.expand(sub) if m.group(0) is not None else "", path, count=1)


@pytest.mark.parametrize("prefix,replacement,path,expected", [
    ("/invoke/", "/", "/invoke/foo/bar", "/foo/bar"),
    ("/invoke", "/", "/invoke", "/"),
    ("/invoke", "/", "/invoke/v1/models", "/v1/models"),
    ("/old", "/new", "/old/x", "/new/x"),
    ("/old", "/new/", "/old", "/new"),
])
def test_replace_prefix_match(prefix, replacement, path, expected):
    objs = pool("p") + gateway({"matches": [{"path": {"type": "PathPrefix", "value": prefix}}], "backendRefs": [to("p")],
                                "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                                    "type": "ReplacePrefixMatch", "replacePrefixMatch": replacement}}}]})
    (r,) = routes(objs)
    assert r["match"] == {"path_separated_prefix": prefix.rstrip("/")}
    assert _rewrite(r, path) == expected


def test_full_path_rewrite_header_modifier_and_method():
    rule = {"matches": [{"path": {"type": "Exact", "value": "/served-models/challenger/invocations"}, "method": "POST",
                         "headers": [{"name": "X-Tenant", "value": "a"}]}],
            "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                                       "replaceFullPath": "/v1/chat/completions"}}},
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                            "set": [{"name": "x-llm-d-model-name-rewrite", "value": "food-review-v2"}],
                            "add": [{"name": "x-extra", "value": "1"}], "remove": ["x-drop"]}}],
            "backendRefs": [to("p")]}
    (r,) = routes(pool("p") + gateway(rule))
    assert r["match"]["path"] == "/served-models/challenger/invocations"
    assert {"name": ":method", "string_match": {"exact": "POST"}} in r["match"]["headers"]
    assert {"name": "x-tenant", "string_match": {"exact": "a"}} in r["match"]["headers"]
    assert _rewrite(r, "/served-models/challenger/invocations") == "/v1/chat/completions"
    muts = r["typed_per_filter_config"][E.HEADER_MUTATION]["mutations"]["request_mutations"]
    assert {"append": {"header": {"key": "x-llm-d-model-name-rewrite", "value": "food-review-v2"},
                       "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}} in muts
    assert {"remove": "x-drop"} in muts
    assert any(m.get("append", {}).get("append_action") == "APPEND_IF_EXISTS_OR_ADD" for m in muts)


def test_query_params_and_response_headers():
    rule = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "queryParams": [{"name": "v", "value": "2"}]}],
            "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                "set": [{"name": "x-served-by", "value": "local"}], "remove": ["server"]}}],
            "backendRefs": [to("p")]}
    (r,) = routes(pool("p") + gateway(rule))
    assert r["match"]["query_parameters"] == [{"name": "v", "string_match": {"exact": "2"}}]
    assert r["response_headers_to_add"] == [{"header": {"key": "x-served-by", "value": "local"},
                                              "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    assert r["response_headers_to_remove"] == ["server"]


def test_gateway_api_precedence_and_timeouts():
    objs = pool("p") + gateway(
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [to("p")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/invoke"}}], "backendRefs": [to("p")],
         "timeouts": {"request": "2m"}},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/invoke"},
                      "headers": [{"name": "x-deployed-model-id", "value": "c"}]}], "backendRefs": [to("p")]},
        {"matches": [{"path": {"type": "Exact", "value": "/x"}}], "backendRefs": [to("p")]},
    )
    objs.append({"apiVersion": "networking.gke.io/v1", "kind": "GCPBackendPolicy", "metadata": {"name": "p", "namespace": "default"},
                 "spec": {"targetRef": {"group": POOL_GROUP, "kind": "InferencePool", "name": "p"}, "default": {"timeoutSec": 300}}})
    rs = routes(objs)
    assert [r["name"] for r in rs] == ["default/r#3", "default/r#2", "default/r#1", "default/r#0"]
    assert [r["route"]["timeout"] for r in rs] == ["300s", "300s", "120s", "300s"]


def test_cloud_only_objects_are_listed_not_faked():
    objs = pool("p") + gateway({"backendRefs": [to("p")]}) + [
        {"apiVersion": "networking.gke.io/v1", "kind": "GCPTrafficExtension", "metadata": {"name": "armor", "namespace": "default"}},
        {"apiVersion": "networking.gke.io/v1", "kind": "HealthCheckPolicy", "metadata": {"name": "p", "namespace": "default"}},
    ]
    skipped = dict(build_plan(objs).skipped)
    assert "Model Armor" in skipped["GCPTrafficExtension default/armor"]
    assert "cloud-only" in skipped["HealthCheckPolicy default/p"]


@pytest.mark.parametrize("container,model,argv", [
    ({"args": ["--model", "m", "--port", "8000", "--enable-lora", "--max-loras", "2"]},
     "m", ["--model", "m", "--enable-lora", "--max-loras", "2"]),
    ({"command": ["vllm", "serve", "org/model"], "args": ["--port=8000", "--lora-modules", "a=b", "c=d", "--max-num-seqs", "8"]},
     "org/model", ["--model", "org/model", "--max-num-seqs", "8"]),
    ({"args": ["--host", "0.0.0.0", "--tensor-parallel-size", "2"]},
     "meta-llama/Llama-3.1-8B-Instruct", ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "2"]),
])
def test_vllm_args_become_simulator_args(container, model, argv):
    assert sim_args(container) == (model, argv)


def test_replicas_get_consecutive_loopback_addresses_and_adapters():
    objs = pool("p") + gateway({"backendRefs": [to("p")]})
    dep = objs[2]
    dep["spec"]["template"]["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "adapters"}}]
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "adapters", "namespace": "default"},
                 "data": {"configmap.yaml": yaml.safe_dump({"vLLMLoRAConfig": {"ensureExist": {"models": [
                     {"id": "a1", "source": "org/a1"}]}}})}})
    plan = build_plan(objs, address_base="127.0.9.20")
    reps = plan.pools["p"].replicas
    assert [(r.name, r.address, r.ports) for r in reps] == [("p-0", "127.0.9.20", (8000,)), ("p-1", "127.0.9.21", (8000,))]
    assert reps[0].adapters == [("a1", "org/a1")]


def test_generated_files_pass_envoy_validation(tmp_path):
    from endpoint_picker.envoy_bootstrap import envoy_binary

    objs = pool("p") + pool("q", "FailClose") + gateway({"backendRefs": [to("p", 1), to("q", 1)]})
    plan = build_plan(objs, port=18080)
    files = E.EnvoyFiles(tmp_path)
    files.write_config(plan, {"p": ["127.0.0.1:9002"], "q": []}, {"p": ["127.0.0.1:8000"], "q": []},
                       access_log=tmp_path / "a.log")
    # Validate the dynamic resources as static ones (validate mode does not read xDS files).
    static = {"clusters": [], "listeners": []}
    for c in yaml.safe_load((tmp_path / "xds" / "cds.yaml").read_text())["resources"]:
        c = copy.deepcopy(c)
        c.pop("@type")
        if c["type"] == "EDS":
            c["type"] = "STATIC"
            c.pop("eds_cluster_config")
            c["load_assignment"] = {"cluster_name": c["name"], "endpoints": []}
        static["clusters"].append(c)
    rds = {}
    for f in (tmp_path / "xds").glob("rds-*.yaml"):
        (r,) = yaml.safe_load(f.read_text())["resources"]  # one route config per file
        rds[r["name"]] = r
    for lst in yaml.safe_load((tmp_path / "xds" / "lds.yaml").read_text())["resources"]:
        lst = copy.deepcopy(lst)
        lst.pop("@type")
        hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
        rc = dict(rds[hcm.pop("rds")["route_config_name"]])
        rc.pop("@type")
        hcm["route_config"] = rc
        static["listeners"].append(lst)
    cfg = tmp_path / "static.yaml"
    cfg.write_text(yaml.safe_dump({"static_resources": static}))
    r = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_live_envoy_accepts_every_file_for_two_gateways(tmp_path):
    """Filesystem xDS rejects some shapes only at runtime (e.g. two route configs in one RDS
    file), so start a real Envoy on the generated files and ask its admin API what it accepted."""
    import time

    import httpx

    from endpoint_picker.envoy_bootstrap import envoy_binary
    from endpoint_picker import loopback
    from igw.local.process import free_port

    objs = pool("p") + gateway({"backendRefs": [to("p")]})
    objs.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                 "metadata": {"name": "gw2", "namespace": "default"},
                 "spec": {"gatewayClassName": "x", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    objs.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r2", "namespace": "default"},
                 "spec": {"parentRefs": [{"name": "gw2"}], "rules": [{"backendRefs": [to("p")]}]}})
    plan = build_plan(objs, port=loopback.free_port_block(2, "127.0.0.1"))
    assert len(plan.listeners) == 2
    files = E.EnvoyFiles(tmp_path)
    files.write_config(plan, {"p": [f"127.0.0.1:{free_port()}"]}, {"p": []})
    assert len(files.route_versions) == 2
    admin = free_port()
    boot = files.write_bootstrap(admin, "test")
    proc = subprocess.Popen([envoy_binary(), "-c", str(boot), "--disable-hot-restart", "-l", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        ok = False
        while time.monotonic() < deadline and not ok:
            time.sleep(0.1)
            try:
                dump = httpx.get(f"http://127.0.0.1:{admin}/config_dump", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                continue
            ok = files.applied(dump)
        assert ok, "Envoy did not accept the generated LDS/CDS/RDS files"
        # Rewriting the same plan changes no file, so Envoy's versions still match.
        files.write_config(plan, {"p": [f"127.0.0.1:{free_port()}"]}, {"p": []})
        time.sleep(0.5)
        assert files.applied(httpx.get(f"http://127.0.0.1:{admin}/config_dump", timeout=2).json())
    finally:
        proc.terminate()
        proc.wait(10)


def test_replicas_listen_on_container_ports_and_mismatches_are_reported():
    objs = pool("p") + gateway({"backendRefs": [to("p")]})
    objs[2]["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    plan = build_plan(objs)
    assert plan.pools["p"].replicas[0].ports == (8080,)
    assert any("targetPorts [8000] are not containerPorts" in w for w in plan.warnings)
