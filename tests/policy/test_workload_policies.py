"""Model server, picker and secret policies on rendered Deployments and Secrets."""

from __future__ import annotations

import pytest

from tests.conftest import rendered
from tests.policy.conftest import mutate, validate

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET = "kubernetes:core/v1:Secret"
WORKLOAD_POLICIES = [
    "model-server-probes", "model-server-graceful-drain", "workloads-run-as-non-root",
    "workloads-request-resources", "no-plaintext-secrets",
]
CONTAINER = "spec.template.spec.containers.0"


def deployment(name: str, stack: str = "prod"):
    return rendered(stack).one(DEPLOYMENT, name)


def model_server(stack: str = "prod"):
    return deployment("vllm-llama3-8b-instruct", stack)


def picker(stack: str = "prod"):
    return deployment("llama3-8b-epp", stack)


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_rendered_workloads_pass_every_mandatory_workload_policy(stack):
    for d in rendered(stack).of_type(DEPLOYMENT) + rendered(stack).of_type(SECRET):
        for policy in WORKLOAD_POLICIES:
            assert validate(policy, d) == [], (policy, d.name)


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe", "startupProbe"])
def test_model_server_without_a_probe_is_rejected(probe):
    broken = mutate(model_server(), f"{CONTAINER}.{probe}", None)
    assert validate("model-server-probes", broken) == [
        f"Deployment 'vllm-llama3-8b-instruct': model server container 'vllm' has no {probe}. Without a startup "
        "probe a loading model is killed by the liveness probe; without readiness the gateway routes to pods that "
        "cannot serve. Fix: add all three probes on the server's health endpoint (vLLM: GET /health)."
    ]


def test_probes_only_concern_gpu_workloads():
    no_probes = mutate(picker(), f"{CONTAINER}.livenessProbe", None)
    assert validate("model-server-probes", no_probes) == []


def test_rendered_grace_period_is_the_seed_value():
    spec = model_server().inputs["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 130
    assert validate("model-server-graceful-drain", model_server()) == []


def test_short_grace_period_is_rejected_with_the_formula():
    short = mutate(model_server(), "spec.template.spec.terminationGracePeriodSeconds", 60)
    assert validate("model-server-graceful-drain", short) == [
        "Deployment 'vllm-llama3-8b-instruct': terminationGracePeriodSeconds is 60 but draining takes 130 s "
        "((4096 tokens x 10 ms x 1.35 + 30 s preStop) x 1.5, rounded up to 10 s), so in-flight requests are cut "
        "off on every rollout. Fix: set terminationGracePeriodSeconds to at least 130 (model_servers[].drain)."
    ]
    unset = mutate(model_server(), "spec.template.spec.terminationGracePeriodSeconds", None)
    assert "terminationGracePeriodSeconds is unset (30 s) but draining takes 130 s" in validate("model-server-graceful-drain", unset)[0]


def test_missing_pre_stop_is_rejected():
    no_hook = mutate(model_server(), f"{CONTAINER}.lifecycle", None)
    messages = validate("model-server-graceful-drain", no_hook)
    assert messages == [
        "Deployment 'vllm-llama3-8b-instruct': model server container 'vllm' has no preStop hook, so it stops "
        "taking requests on SIGTERM while the load balancer still sends it traffic. Fix: add "
        "lifecycle.preStop.sleep.seconds (30 s suits GKE's regional load balancers)."
    ]


def test_longer_pre_stop_needs_a_longer_grace_period():
    # preStop 60 s: (55.3 + 60) x 1.5 = 173 -> 180 s; the rendered 130 s no longer covers it.
    slow_lb = mutate(model_server(), f"{CONTAINER}.lifecycle.preStop.sleep.seconds", 60)
    assert "draining takes 180 s" in validate("model-server-graceful-drain", slow_lb)[0]
    exec_hook = mutate(model_server(), f"{CONTAINER}.lifecycle.preStop", {"exec": {"command": ["/usr/bin/sleep", "60"]}})
    assert "draining takes 180 s" in validate("model-server-graceful-drain", exec_hook)[0]


def test_drain_inputs_are_per_model_server():
    # A faster model (5 ms per token): (20.5 x 1.35 + 30) x 1.5 = 86.5 -> 90 s is enough for it.
    fast = mutate(model_server(), "spec.template.spec.terminationGracePeriodSeconds", 90)
    assert validate("model-server-graceful-drain", fast) != []
    assert validate("model-server-graceful-drain", fast, drain={"vllm-llama3-8b-instruct": {"timePerOutputTokenMs": 5}}) == []


def test_picker_must_run_as_non_root():
    root = mutate(picker(), f"{CONTAINER}.securityContext", {"runAsUser": 0})
    root = mutate(root, "spec.template.spec.securityContext", None)
    assert validate("workloads-run-as-non-root", root) == [
        "Deployment 'llama3-8b-epp': container(s) 'epp' may run as root. Fix: set securityContext.runAsNonRoot: "
        "true and a non-zero runAsUser on the pod or each container."
    ]


def test_model_servers_running_as_root_is_advisory():
    from tests.policy.conftest import POLICIES

    assert POLICIES["model-servers-run-as-non-root"].enforcement_level.value == "advisory"
    assert POLICIES["workloads-run-as-non-root"].enforcement_level.value == "mandatory"
    assert validate("model-servers-run-as-non-root", model_server()) == []  # hardened: UID 10001
    root = mutate(mutate(model_server(), f"{CONTAINER}.securityContext", None), "spec.template.spec.securityContext", None)
    messages = validate("model-servers-run-as-non-root", root)
    assert messages and messages[0].startswith("Deployment 'vllm-llama3-8b-instruct': container(s) 'vllm'")
    assert validate("workloads-run-as-non-root", root) == []  # GPU servers: the advisory policy only
    non_root = mutate(model_server(), "spec.template.spec.securityContext", {"runAsNonRoot": True, "runAsUser": 1000})
    assert validate("model-servers-run-as-non-root", non_root) == []


@pytest.mark.parametrize("which", ["model_server", "picker"])
def test_containers_without_requests_are_rejected(which):
    d = model_server() if which == "model_server" else picker()
    name = d.inputs["spec"]["template"]["spec"]["containers"][0]["name"]
    no_memory = mutate(d, f"{CONTAINER}.resources.requests.memory", None)
    assert validate("workloads-request-resources", no_memory) == [
        f"Deployment {d.inputs['metadata']['name']!r}: container {name!r} requests no memory, so the scheduler can "
        "pack it anywhere and it is first to be evicted. Fix: set resources.requests.{memory}."
    ]


def test_sidecar_requests_are_mandatory_and_the_rendered_syncer_passes():
    from tests.policy.conftest import POLICIES

    assert POLICIES["sidecars-request-resources"].enforcement_level.value == "mandatory"
    assert validate("sidecars-request-resources", model_server()) == []
    d = model_server()
    sidecar = d.inputs["spec"]["template"]["spec"]["initContainers"][0]
    bare = mutate(d, "spec.template.spec.initContainers.0.resources", None)
    assert validate("sidecars-request-resources", bare) == [
        f"Deployment 'vllm-llama3-8b-instruct': sidecar {sidecar['name']!r} (initContainers, restartPolicy: Always) "
        "requests no cpu or memory, so the pod's scheduling ignores what it uses. Fix: set "
        "resources.requests.{cpu, memory} on the sidecar."
    ]


def test_rendered_secrets_are_masked():
    secrets = rendered("prod").of_type(SECRET)
    assert {s.name for s in secrets} >= {"igw-prod-hf-token", "llama3-8b-epp-api-keys"}
    for s in secrets:
        assert validate("no-plaintext-secrets", s) == [], s.name


def test_plaintext_secret_data_is_rejected():
    hf = rendered("prod").one(SECRET, "igw-prod-hf-token")
    leaked = mutate(hf, "stringData", {"token": "hf_abcdefghijklmnop"})
    assert validate("no-plaintext-secrets", leaked) == [
        "Secret 'igw-prod-hf-token': stringData key(s) token are plain values in the program, so they are stored "
        "unencrypted in the Pulumi state and visible in previews. Fix: pass them as Pulumi secrets (`pulumi config "
        "set --secret`, read with require_secret / Output.secret)."
    ]
    per_key = mutate(hf, "stringData", {"token": "[secret]", "user": "me"})
    assert "stringData key(s) user are plain values" in validate("no-plaintext-secrets", per_key)[0]


def test_literal_token_env_is_rejected():
    d = model_server()
    env = [e for e in d.inputs["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] != "HUGGING_FACE_HUB_TOKEN"]
    leaked = mutate(d, f"{CONTAINER}.env", env + [{"name": "HUGGING_FACE_HUB_TOKEN", "value": "hf_abcdefghijklmnop"}])
    assert validate("no-plaintext-secrets", leaked) == [
        "Deployment 'vllm-llama3-8b-instruct': container 'vllm' sets env HUGGING_FACE_HUB_TOKEN to a literal value; "
        "anyone who can read the Deployment sees it. Fix: mount it from a Kubernetes Secret as a file and point the "
        "variable the image reads for a token path at it (HF_TOKEN_PATH), or use env[].valueFrom.secretKeyRef."
    ]
    inlined_secret = mutate(d, f"{CONTAINER}.env", env + [{"name": "OPENAI_API_KEY", "value": "[secret]"}])
    assert "sets env OPENAI_API_KEY to a Pulumi secret written into the pod spec" in validate("no-plaintext-secrets", inlined_secret)[0]
    allowed = mutate(d, f"{CONTAINER}.env", env + [{"name": "CACHE_KEY_PREFIX", "value": "v1"}])
    assert validate("no-plaintext-secrets", allowed, allowEnvNames=["CACHE_KEY_PREFIX"]) == []


def test_token_path_into_a_mounted_secret_is_not_a_secret():
    d = model_server()
    assert {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"} in d.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert validate("no-plaintext-secrets", d) == []
    env = [e for e in d.inputs["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] != "HF_TOKEN_PATH"]
    unmounted = mutate(d, f"{CONTAINER}.env", env + [{"name": "HF_TOKEN_PATH", "value": "/etc/hf/token"}])
    assert validate("no-plaintext-secrets", unmounted) == [
        "Deployment 'vllm-llama3-8b-instruct': container 'vllm' sets env HF_TOKEN_PATH to a literal value; anyone who "
        "can read the Deployment sees it. Fix: mount it from a Kubernetes Secret as a file and point the variable the "
        "image reads for a token path at it (HF_TOKEN_PATH), or use env[].valueFrom.secretKeyRef."
    ]
