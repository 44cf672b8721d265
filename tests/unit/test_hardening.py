"""Hardened workloads (pure builders): the security context per runtime preset, the restricted
profile check, the namespace and its Pod Security level, NetworkPolicies per stack shape, pull
policies, and the namespace rules with their exact messages."""

from __future__ import annotations

import copy

import pytest

from components.builders import images
from components.builders import model_server as ms
from components.builders import pod_security as ps
from components.catalog.hardening import CACHE_ENV, RUNTIME_USERS
from components.catalog.runtimes import PRESETS, resolve_preset
from components.config.serving import ModelServerConfig
from components.namespace import pod_security_exceptions
from components.network_policies import NetworkPoliciesArgs, policies
from components.stack_config import parse_stack_config
from tests.unit.config_cases import SERVING_BASE, config_problems

EXPECTED_UID = {"vllm": 10001, "caikit-tgis": 10001, "caikit-standalone": 10001, "tgis": 10001, "openvino": 5000, "triton": 1000}
"""One row per preset (a new preset must add its own: the UID its image runs as)."""


def server(runtime: str, **kw) -> ModelServerConfig:
    return ModelServerConfig(**{"name": "srv", "model": "org/model", "runtime": runtime, **kw})


def deployment(s: ModelServerConfig, hf_secret_name: str | None = None) -> dict:
    return ms.deployment(s, namespace="ns", preset=resolve_preset(s), accelerator="nvidia-h100-80gb",
                         grace_period_seconds=130, hf_secret_name=hf_secret_name, service_account_name=None)


def test_every_preset_has_a_user_row():
    assert set(RUNTIME_USERS) == set(PRESETS) == set(EXPECTED_UID)


@pytest.mark.parametrize("runtime", sorted(EXPECTED_UID))
def test_security_context_per_preset(runtime):
    uid = EXPECTED_UID[runtime]
    pod = deployment(server(runtime))["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": uid,
        "runAsGroup": uid, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert {"/tmp": "tmp", "/cache": "cache", "/data": "data", "/dev/shm": "shm"}.items() <= mounts.items()
    emptydirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {"tmp", "cache", "data", "shm"} <= emptydirs
    env = {e["name"]: e["value"] for e in container["env"]}
    own = PRESETS[runtime].env
    assert {k: v for k, v in CACHE_ENV.items() if k not in own}.items() <= env.items()
    assert ps.restricted_violations(pod) == []


def test_vllm_env_points_every_cache_at_an_emptydir():
    env = {e["name"]: e["value"] for e in deployment(server("vllm"))["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {k: env[k] for k in ("HOME", "USER", "HF_HOME", "VLLM_CACHE_ROOT", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR")} == {
        "HOME": "/cache", "USER": "model-server", "HF_HOME": "/data", "VLLM_CACHE_ROOT": "/cache/vllm",
        "TRITON_CACHE_DIR": "/cache/triton", "TORCHINDUCTOR_CACHE_DIR": "/cache/torchinductor",
    }


def test_lora_syncer_is_hardened_and_limited():
    s = server("vllm", lora_adapters=[{"id": "a", "source": "org/a"}])
    (syncer,) = deployment(s)["spec"]["template"]["spec"]["initContainers"]
    assert syncer["securityContext"] == ps.container_security_context(RUNTIME_USERS["vllm"])
    assert syncer["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def test_token_is_a_file_never_an_env_value():
    pod = deployment(server("vllm"), hf_secret_name="hf")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"} in container["env"]
    assert not [e for e in container["env"] if "valueFrom" in e]
    assert {"name": "hf-token", "secret": {"secretName": "hf", "defaultMode": 0o440, "items": [{"key": "token", "path": "token"}]}} in pod["volumes"]


def test_run_as_user_overrides_the_preset_and_zero_is_not_hardened():
    custom = deployment(server("vllm", runtime_overrides={"run_as_user": 20000}))["spec"]["template"]["spec"]
    assert custom["securityContext"]["runAsUser"] == custom["containers"][0]["securityContext"]["runAsUser"] == 20000
    root = deployment(server("vllm", runtime_overrides={"run_as_user": 0}))["spec"]["template"]["spec"]
    assert "securityContext" not in root and "securityContext" not in root["containers"][0]
    assert ps.restricted_violations(root) == [
        "containers[vllm]: allowPrivilegeEscalation is not false",
        "containers[vllm]: capabilities.drop does not include ALL",
        "containers[vllm]: runAsNonRoot is not true",
        "containers[vllm]: no RuntimeDefault or Localhost seccomp profile",
    ]


def test_restricted_violations_name_each_break():
    pod = copy.deepcopy(deployment(server("vllm"))["spec"]["template"]["spec"])
    c = pod["containers"][0]
    c["securityContext"].update(privileged=True, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SYS_ADMIN"]})
    c["ports"][0]["hostPort"] = 80
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod.update(hostNetwork=True, securityContext={**pod["securityContext"], "seccompProfile": {"type": "Unconfined"}})
    assert ps.restricted_violations(pod) == [
        "hostNetwork: true",
        "volumes[host]: type hostPath is not allowed",
        "securityContext.seccompProfile.type: Unconfined",
        "containers[vllm]: privileged",
        "containers[vllm]: adds capabilities SYS_ADMIN",
        "containers[vllm]: hostPort 80",
    ]


# -- namespace and Pod Security -------------------------------------------------------------

def test_namespace_is_restricted_when_every_workload_meets_it():
    cfg = parse_stack_config(SERVING_BASE)
    assert pod_security_exceptions(cfg) == {}
    assert ps.namespace(cfg.namespace, *ps.pod_security_level({}), {"team": "ml"}) == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "igw", "labels": {
            "team": "ml", "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"}},
    }


def test_a_root_model_server_drops_the_namespace_to_baseline_with_the_reason():
    servers = [{**SERVING_BASE["model_servers"][0], "runtime_overrides": {"run_as_user": 0}}]
    cfg = parse_stack_config({**SERVING_BASE, "model_servers": servers})
    level, reason = ps.pod_security_level(pod_security_exceptions(cfg))
    assert (level, reason) == ("baseline", "model server vllm-llama3-8b-instruct: runtime_overrides.run_as_user is 0 (the image needs root)")
    meta = ps.namespace("igw", level, reason)["metadata"]
    assert meta["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert meta["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    assert meta["annotations"] == {"inference-gateway.dev/pod-security-reason": reason}


def test_namespace_defaults_to_name_prefix_and_can_be_named():
    assert parse_stack_config({**SERVING_BASE, "name_prefix": "team-a"}).namespace == "team-a"
    assert parse_stack_config({**SERVING_BASE, "namespace": "serving"}).namespace == "serving"
    adopted = parse_stack_config({**SERVING_BASE, "namespace": "default", "create_namespace": False})
    assert (adopted.namespace, adopted.create_namespace) == ("default", False)


@pytest.mark.parametrize(("changes", "message"), [
    pytest.param({"environment": "production", "namespace": "default", "create_namespace": False},
                 "namespace: 'default' is not allowed in production stacks; use a namespace of the stack's own "
                 "(leave namespace unset for name_prefix)", id="default-in-production"),
    pytest.param({"namespace": "default"},
                 "namespace: 'default' exists in every cluster and a stack must not own (or delete) it; set "
                 "create_namespace: false to deploy into it", id="default-created"),
    pytest.param({"namespace": "kube-system", "create_namespace": False},
                 "namespace: 'kube-system' belongs to the cluster's system components; use a namespace of the stack's own",
                 id="system-namespace"),
    pytest.param({"namespace": "gmp-system"},
                 "namespace: 'gmp-system' belongs to the cluster's system components; use a namespace of the stack's own",
                 id="managed-prometheus"),
])
def test_namespace_rules(changes, message):
    assert config_problems(SERVING_BASE, **changes) == [message]


def test_namespace_must_be_a_dns_label():
    (msg,) = config_problems(SERVING_BASE, namespace="Team_A")
    assert msg.startswith("namespace: 'Team_A'"), msg


# -- NetworkPolicies per stack shape ----------------------------------------------------------

DNS = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
HEALTH_CHECKS = [{"ipBlock": {"cidr": "35.191.0.0/16"}}, {"ipBlock": {"cidr": "130.211.0.0/22"}}]
PROXY = [{"ipBlock": {"cidr": "10.129.0.0/23"}}]
GMP = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gmp-system"}}}
INTERNET_HTTPS = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
                  "ports": [{"protocol": "TCP", "port": 443}]}
API_SERVER = "34.1.2.3/32"


def tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def rendered_policies(**changes) -> dict[str, dict]:
    cfg = parse_stack_config({**copy.deepcopy(SERVING_BASE), **changes})
    return {p["metadata"]["name"]: p for p in policies(NetworkPoliciesArgs(config=cfg, api_server_cidrs=[API_SERVER]))}


def test_vllm_pool_policies():
    found = rendered_policies()
    assert set(found) == {"vllm-llama3-8b-instruct-model-server", "llama-epp"}
    server, picker = found["vllm-llama3-8b-instruct-model-server"], found["llama-epp"]
    assert server["metadata"] == {"name": "vllm-llama3-8b-instruct-model-server", "namespace": "igw", "labels": {"app": "vllm-llama3-8b-instruct"}}
    assert server["spec"] == {
        "podSelector": {"matchLabels": {"app": "vllm-llama3-8b-instruct"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": PROXY, "ports": tcp(8000)},
            {"from": HEALTH_CHECKS, "ports": tcp(8000)},
            {"from": [{"podSelector": {"matchLabels": {"app": "llama-epp", "inferencepool": "llama-epp"}}}, GMP], "ports": tcp(8000)},
        ],
        "egress": [DNS, INTERNET_HTTPS],  # Hugging Face: weights and LoRA adapters
    }
    assert picker["spec"] == {
        "podSelector": {"matchLabels": {"app": "llama-epp", "inferencepool": "llama-epp"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": PROXY, "ports": tcp(9002)},  # ext_proc from the gateway's proxies
            {"from": HEALTH_CHECKS, "ports": tcp(9003)},
            {"from": [GMP], "ports": tcp(9090)},
        ],
        "egress": [
            DNS,
            {"to": [{"ipBlock": {"cidr": API_SERVER}}], "ports": tcp(443)},
            {"to": [{"podSelector": {"matchLabels": {"app": "vllm-llama3-8b-instruct"}}}], "ports": tcp(8000)},
        ],
    }


def test_weights_from_a_bucket_add_the_metadata_server_and_keep_https_only_for_cloud_storage():
    servers = [{**SERVING_BASE["model_servers"][0], "gcs_bucket": "weights", "lora_adapters": [], "enable_lora": False}]
    found = rendered_policies(model_servers=servers, models=[{"name": "meta-llama/Llama-3.1-8B-Instruct", "pool": "llama"}])
    egress = found["vllm-llama3-8b-instruct-model-server"]["spec"]["egress"]
    assert egress == [
        DNS, INTERNET_HTTPS,
        {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}], "ports": tcp(80)},
        {"to": [{"ipBlock": {"cidr": "169.254.169.252/32"}}], "ports": tcp(988)},
    ]


def test_a_runtime_that_reads_mounted_models_reaches_nothing_but_dns():
    servers = [{"name": "triton-iris", "model": "iris", "runtime": "triton", "gcs_bucket": None}]
    found = rendered_policies(model_servers=servers, pools=[{"name": "iris", "model_server": "triton-iris"}], models=[])
    server = found["triton-iris-model-server"]["spec"]
    assert server["egress"] == [DNS]
    assert server["ingress"][0] == {"from": PROXY, "ports": tcp(8000)}
    # no vLLM metrics for the picker to scrape: it never reaches the server
    assert found["iris-epp"]["spec"]["egress"] == [DNS, {"to": [{"ipBlock": {"cidr": API_SERVER}}], "ports": tcp(443)}]


def test_two_pools_on_one_server_both_scrape_it():
    pools = [{"name": "llama", "model_server": "vllm-llama3-8b-instruct"}, {"name": "llama-b", "model_server": "vllm-llama3-8b-instruct"}]
    server = rendered_policies(pools=pools)["vllm-llama3-8b-instruct-model-server"]["spec"]
    assert server["ingress"][2]["from"] == [
        {"podSelector": {"matchLabels": {"app": "llama-epp", "inferencepool": "llama-epp"}}},
        {"podSelector": {"matchLabels": {"app": "llama-b-epp", "inferencepool": "llama-b-epp"}}},
        GMP,
    ]


# -- pull policy ---------------------------------------------------------------------------

class _Later:
    """Stands in for a value known after deploy (a Pulumi Output): ``apply`` defers the rule."""

    def __init__(self, value: str):
        self.value = value

    def apply(self, f):
        return f(self.value)


@pytest.mark.parametrize(("image", "policy"), [
    ("vllm/vllm-openai:v0.19.0", "Always"),
    ("vllm/vllm-openai@sha256:" + "a" * 64, "IfNotPresent"),
    ("vllm/vllm-openai:v0.19.0@sha256:" + "a" * 64, "IfNotPresent"),
    (_Later("r/picker@sha256:" + "b" * 64), "IfNotPresent"),
    (_Later("r/picker:local"), "Always"),
])
def test_pull_policy(image, policy):
    assert images.pull_policy(image) == policy


def test_pull_policy_refuses_what_is_not_an_image_reference():
    with pytest.raises(TypeError, match="image reference must be a string, got int"):
        images.pull_policy(3)


def test_digest_override_is_cached_and_tags_are_resolved():
    tagged = deployment(server("vllm"))["spec"]["template"]["spec"]["containers"][0]
    pinned = deployment(server("vllm", runtime_overrides={"image": "vllm/vllm-openai@sha256:" + "c" * 64}))
    assert tagged["imagePullPolicy"] == "Always"
    assert pinned["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


# -- the sandbox the real-vLLM test runs the rendered container in (tests/pod_sandbox.py) ---------

def test_pod_sandbox_reads_the_rendered_context_and_refuses_what_it_cannot_reproduce():
    from tests.pod_sandbox import PodSandbox, SandboxError

    d = deployment(server("vllm"), hf_secret_name="hf")
    sandbox = PodSandbox.from_deployment(d, "vllm", {"hf": {"token": "t"}})
    assert (sandbox.uid, sandbox.gid, sandbox.fs_group, sandbox.read_only_root, sandbox.no_new_privs,
            sandbox.drop_all_capabilities) == (10001, 10001, 10001, True, True, True)
    secret = next(m for m in sandbox.mounts if m.kind == "secret")
    assert (secret.path, secret.files) == ("/var/run/secrets/huggingface", {"token": ("t", 0o440)})
    with pytest.raises(SandboxError, match="no value given for Secret 'hf'"):
        PodSandbox.from_deployment(d, "vllm", {})
    root = deployment(server("vllm", runtime_overrides={"run_as_user": 0}))
    with pytest.raises(SandboxError, match="no runAsUser/runAsGroup"):
        PodSandbox.from_deployment(root, "vllm", {})
    with pytest.raises(SandboxError, match="no container 'sidecar'"):
        PodSandbox.from_deployment(d, "sidecar", {})
