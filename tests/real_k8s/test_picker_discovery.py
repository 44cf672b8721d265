"""The picker in Kubernetes discovery mode against the real API server, with its own
ServiceAccount token and the rendered Role: pods created and made Ready through the API are
routed to through real Envoy; readiness flips, deletions and InferencePool, InferenceObjective
and InferenceModelRewrite edits reach the routing decisions."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from igw.kube import until

from .dataplane import SIM_PORT
from .pool_env import PoolEnv, choose_bundle, make_pool_env

DROPPED = "x-llm-d-request-dropped-reason"


@pytest.fixture
def env(cluster, crds, namespace, addresses, workdir) -> Iterator[PoolEnv]:
    e = make_pool_env(cluster, namespace, addresses, workdir, choose_bundle())
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def routed(env: PoolEnv) -> PoolEnv:
    picker = env.start_picker()
    until(picker.serving, timeout=30, what=f"picker ready\n{picker.log()}")
    env.start_gateway(picker)
    return env


def base_model(env: PoolEnv) -> str:
    return env.replica.model


def served_by(env: PoolEnv, n: int = 6, model: str | None = None) -> set[str]:
    pods = set()
    for i in range(n):
        r = env.gateway.complete(model or base_model(env), prompt=f"request {i}")
        assert r.status_code == 200, (r.status_code, r.headers, r.text)
        pods.add(r.headers["x-inference-pod"])
    return pods


def endpoint(env: PoolEnv, pod: str) -> str:
    return env.pods[pod].endpoint


def test_ready_pods_are_routed_to_and_readiness_flips(routed: PoolEnv) -> None:
    env, picker = routed, routed.pickers[0]
    env.add_pod("a", ready=True)
    env.add_pod("b", ready=False)
    picker.wait_endpoints({endpoint(env, "a")})
    assert served_by(env) == {"a"}

    env.pods["a"].set_ready(False)
    env.pods["b"].set_ready(True)
    picker.wait_endpoints({endpoint(env, "b")})
    assert served_by(env) == {"b"}


def test_a_deleted_pod_leaves_the_pool(routed: PoolEnv) -> None:
    env, picker = routed, routed.pickers[0]
    env.add_pod("a")
    env.add_pod("b")
    picker.wait_endpoints({endpoint(env, "a"), endpoint(env, "b")})
    env.pods["a"].delete()
    picker.wait_endpoints({endpoint(env, "b")})
    assert served_by(env) == {"b"}


def test_pods_the_pool_does_not_select_or_not_running_are_ignored(routed: PoolEnv) -> None:
    env, picker = routed, routed.pickers[0]
    outsider = env.bundle.pool["spec"]["selector"]["matchLabels"]
    env.add_pod("other-app", labels={k: "something-else" for k in outsider})
    pending = env.add_pod("pending", ready=True)
    env.admin.patch("v1", "Pod", "pending", {"status": {"podIP": None, "podIPs": None}}, namespace=env.namespace,
                    subresource="status")  # Ready but no IP yet, as right after scheduling
    env.add_pod("a")
    picker.wait_endpoints({endpoint(env, "a")})
    assert pending.endpoint not in picker.endpoints()
    assert served_by(env) == {"a"}


def test_no_ready_pod_is_a_503_from_the_picker(routed: PoolEnv) -> None:
    env, picker = routed, routed.pickers[0]
    env.add_pod("a", ready=False)
    picker.wait_endpoints(set())
    r = env.gateway.complete(base_model(env))
    assert (r.status_code, r.headers.get(DROPPED)) == (503, "rejected-no-endpoints"), r.text


def test_inference_pool_edits_are_picked_up(routed: PoolEnv) -> None:
    env, picker = routed, routed.pickers[0]
    env.add_pod("stable", labels={"track": "stable"})
    env.add_pod("canary", labels={"track": "canary"})
    picker.wait_endpoints({endpoint(env, "stable"), endpoint(env, "canary")})

    selector = {**env.bundle.pool["spec"]["selector"]["matchLabels"], "track": "canary"}
    env.patch_pool({"selector": {"matchLabels": selector}})
    picker.wait_endpoints({endpoint(env, "canary")})
    assert served_by(env) == {"canary"}

    canary_ip = env.pods["canary"].ip
    env.patch_pool({"targetPorts": [{"number": SIM_PORT}, {"number": SIM_PORT + 1}]})
    picker.wait_endpoints({f"{canary_ip}:{SIM_PORT}", f"{canary_ip}:{SIM_PORT + 1}"})  # one per target port
    env.patch_pool({"targetPorts": [{"number": SIM_PORT + 1}]})
    picker.wait_endpoints({f"{canary_ip}:{SIM_PORT + 1}"})

    env.admin.delete("inference.networking.k8s.io/v1", "InferencePool", env.pool_name(), namespace=env.namespace)
    picker.wait_endpoints(set())
    r = env.gateway.complete(base_model(env))
    assert (r.status_code, r.headers.get(DROPPED)) == (503, "rejected-no-endpoints"), r.text


def test_inference_objective_edits_change_who_is_shed(routed: PoolEnv) -> None:
    """A pool whose only pod stops answering has stale metrics: saturated. Sheddable traffic
    (priority < 0) is then refused by the picker (429); other traffic is still sent (Envoy's
    503: nothing listens). Editing and deleting the model's InferenceObjective moves it between
    the two."""
    env, picker = routed, routed.pickers[0]
    pod = env.add_pod("a")
    picker.wait_endpoints({pod.endpoint})
    assert served_by(env, 1) == {"a"}
    pod.stop()  # the pod stays Ready in the API; its metrics go stale

    model = base_model(env)
    objective = next(o for o in env.bundle.objectives
                     if (o["metadata"].get("annotations") or {}).get("inference-gateway.dev/model") == model)
    name = objective["metadata"]["name"]
    assert objective["spec"].get("priority", 0) >= 0

    def answer() -> tuple[int, str | None]:
        r = env.gateway.complete(model)
        return r.status_code, r.headers.get(DROPPED)

    assert answer()[0] == 503 and answer()[1] is None  # sent to the dead pod, not shed
    env.admin.patch("llm-d.ai/v1alpha2", "InferenceObjective", name, {"spec": {"priority": -1}}, namespace=env.namespace)
    until(lambda: answer() == (429, "rejected-saturated"), timeout=20, what="objective edit sheds the model")
    env.admin.delete("llm-d.ai/v1alpha2", "InferenceObjective", name, namespace=env.namespace)
    until(lambda: answer() == (503, None), timeout=20, what="objective deletion stops shedding the model")


def test_inference_model_rewrite_edits_are_picked_up(routed: PoolEnv) -> None:
    """The rewrite's target is what reaches the pod: an unserved target comes back as the
    model server's own 404 naming it; a served adapter is loaded by the request (unloaded first on
    the pod, as an operator would, when the rewrite's first request had loaded it)."""
    env, picker = routed, routed.pickers[0]
    pod = env.add_pod("a")
    picker.wait_endpoints({pod.endpoint})
    rewrite = env.bundle.rewrites[0]
    name = rewrite["metadata"]["name"]
    client_model = rewrite["spec"]["rules"][0]["matches"][0]["model"]["value"]
    assert env.gateway.complete(client_model).status_code == 200

    def retarget(model: str) -> None:
        rules = [{"matches": [{"model": {"value": client_model}}], "targets": [{"modelRewrite": model, "weight": 100}]}]
        env.admin.patch("llm-d.ai/v1alpha2", "InferenceModelRewrite", name, {"spec": {"rules": rules}},
                        namespace=env.namespace)

    retarget("no-such-adapter")
    until(lambda: env.gateway.complete(client_model).status_code == 404, timeout=20, what="rewrite edit picked up")
    r = env.gateway.complete(client_model)
    assert r.json()["error"]["message"] == "The model `no-such-adapter` does not exist.", r.text

    adapters = [(a, src) for a, src in env.replica.adapters if a != client_model]
    assert adapters, env.replica.adapters
    adapter, source = adapters[0]
    if adapter in pod.state()["gpu_lora_slots"]:     # the rewrite's first request may have loaded it:
        for path, body in (("unload", {"lora_name": adapter}), ("load", {"lora_name": adapter, "lora_path": source})):
            assert httpx.post(f"http://{pod.endpoint}/v1/{path}_lora_adapter", json=body, timeout=10).status_code == 200
    assert adapter not in pod.state()["gpu_lora_slots"]
    retarget(adapter)
    until(lambda: env.gateway.complete(client_model).status_code == 200, timeout=20, what="second rewrite edit")
    assert adapter in pod.state()["gpu_lora_slots"]
