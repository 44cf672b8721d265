"""Seed 004's update rules on a running `igw up --stack external`: the old config serves until the
new one is ready (no request dropped, `igw status` shows IN_PROGRESS while every endpoint stays
READY), one update at a time (a second `igw up` is refused naming the running one), `igw up
--cancel` rolls back to the last good config (it interrupts the updating `igw up` with SIGINT,
exactly what Ctrl-C does), and an endpoint is never converted to or from an external model.

An update is made slow on purpose with a new model server whose simulated replica takes seconds
to start (`--startup-duration`), so each state can be observed without timing races.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from igw.local.update_lock import holder

from .external_stack import USERS, ExternalStack

pytestmark = pytest.mark.slow

SLOW_SERVER = """\
  inference-gateway:model_servers:
    - name: {name}
      model: {model}
      replicas: 1
      hf_token: false
      enable_lora: false
      extra_args: ["--startup-duration", "{seconds}"]
"""
SLOW_POOL = """\
  inference-gateway:pools:
    - name: {name}
      model_server: {name}
      picker: {{api_keys: true}}
"""
SLOW_MODEL = """\
  inference-gateway:models:
    - name: {model}
      pool: {name}
"""
SLOW_ROUTE = """\
      routes:
        - name: {name}
          pool: {name}
          base_path: /{name}
"""


def add_slow_endpoint(ext: ExternalStack, name: str, model: str, seconds: int) -> None:
    """A self-hosted endpoint whose one pod becomes ready only after ``seconds``."""
    for anchor, block in (("  inference-gateway:model_servers:\n", SLOW_SERVER), ("  inference-gateway:pools:\n", SLOW_POOL),
                          ("  inference-gateway:models:\n", SLOW_MODEL), ("      routes:\n", SLOW_ROUTE)):
        ext.edit(anchor, block.format(name=name, model=model, seconds=seconds))


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    stack = ExternalStack(tmp_path_factory.mktemp("igw-external-updates"))
    r = stack.up("--detach")
    assert r.returncode == 0, f"igw up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    try:
        yield stack
    finally:
        stack.down()


class Traffic(threading.Thread):
    """Chat requests on the external endpoint, round robin over the users, until stopped."""

    def __init__(self, ext: ExternalStack) -> None:
        super().__init__(daemon=True)
        self.ext, self.results = ext, []
        self.halt = threading.Event()

    def run(self) -> None:
        users = list(USERS.values())
        with httpx.Client(timeout=30) as h:
            i = 0
            while not self.halt.is_set():
                r = h.post(f"{self.ext.url}/openai-chat/v1/chat/completions", headers={"Authorization": f"Bearer {users[i % 4]}"},
                           json={"model": "gpt-4o-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 6})
                content = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text
                self.results.append((r.status_code, content))
                i += 1
                time.sleep(0.25)


def wait_for_lock(ext: ExternalStack, proc, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = holder(ext.state_dir)
        if rec is not None and rec.kind == "update" and rec.pid == proc.pid:
            return rec
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the update never took the lock")


def wait_for_status(ext: ExternalStack, check, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, report = ext.status()
        if check(report):
            return report
        time.sleep(0.3)
    raise AssertionError(f"status never matched: {report}")


def test_an_update_keeps_serving_and_status_shows_it(ext):
    ext.edit("        name: gpt-4o\n", "        name: gpt-4o-mini\n")
    add_slow_endpoint(ext, "slow", "meta-llama/Llama-3.2-1B-Instruct", 8)
    traffic = Traffic(ext)
    traffic.start()
    proc = ext.up_background()
    try:
        wait_for_lock(ext, proc)
        during = wait_for_status(ext, lambda r: ext.endpoint(r, "gpt-4o-chat")["state"]["config_update"] == "IN_PROGRESS")
        assert {e["state"]["ready"] for e in during["endpoints"]} == {"READY"}  # the old config serves
        assert proc.wait(180) == 0, proc.communicate()
        time.sleep(1)
    finally:
        traffic.halt.set()
        traffic.join(30)
    statuses = {s for s, _ in traffic.results}
    assert statuses == {200}, [r for r in traffic.results if r[0] != 200][:3]
    assert "gpt-4o at" in traffic.results[0][1] and "gpt-4o-mini at" in traffic.results[-1][1]
    code, after = ext.status()
    assert code == 0, after
    chat = ext.endpoint(after, "gpt-4o-chat")
    assert chat["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}
    assert chat["served_entities"][0]["external_model"]["name"] == "gpt-4o-mini"
    assert ext.endpoint(after, "meta-llama/Llama-3.2-1B-Instruct")["state"]["ready"] == "READY"
    assert after["update"]["last_update"] == "applied"


def test_one_update_at_a_time_and_cancel_rolls_back(ext):
    generation = ext.state()["generation"]
    add_slow_endpoint(ext, "stuck", "Qwen/Qwen2.5-0.5B-Instruct", 600)  # never ready within the test
    proc = ext.up_background()
    rec = wait_for_lock(ext, proc)
    second = ext.up(timeout=120)
    assert second.returncode == 1
    assert (f"error: stack 'external' is already being changed: an update of stack 'external' by igw up (pid {proc.pid}, "
            f"started {time.strftime('%H:%M:%S', time.localtime(rec.started_at))}, from generation {generation}) is applying; "
            "wait for it to finish, or cancel it with `igw up --stack external --cancel` (it rolls back to the last good "
            "config)") in second.stderr
    wait_for_status(ext, lambda r: ext.state()["status"] == "reloading"
                    and ext.endpoint(r, "gpt-4o-chat")["state"]["config_update"] == "IN_PROGRESS")
    cancel = ext.up("--cancel", timeout=240)
    assert cancel.returncode == 0, cancel.stderr
    assert f"igw up --cancel: cancelling an update of stack 'external' by igw up (pid {proc.pid}" in cancel.stdout
    assert "igw up --cancel: the update ended as cancelled; rolled back to generation" in cancel.stdout
    out, _ = proc.communicate(timeout=60)
    # --cancel interrupts the updating igw up as Ctrl-C does (SIGINT): the same path ends it
    assert proc.returncode == 130
    assert "  cancel    the update is being cancelled ..." in out
    assert "  rollback  applying the last good config (generation" in out
    assert "error: the update was cancelled; the last good config is serving again" in out
    assert holder(ext.state_dir) is None
    code, report = ext.status()
    assert code == 0, report
    assert {e["state"]["config_update"] for e in report["endpoints"]} == {"UPDATE_CANCELED"}
    assert "Qwen/Qwen2.5-0.5B-Instruct" not in [e["name"] for e in report["endpoints"]]
    assert not [p for p in ext.state()["processes"] if p.startswith("stuck")]
    assert {e["state"]["ready"] for e in report["endpoints"]} == {"READY"}


def test_an_endpoint_is_not_converted_from_an_external_model(ext):
    ext.edit("""    - name: gpt-instruct
      pool: openai-completions
      external:
        provider: openai
        name: gpt-3.5-turbo-instruct
        task: llm/v1/completions
        api_key_secret: "{{secrets/openai/api_key}}"
        replicas: 1
""", """    - name: gpt-instruct
      pool: vllm-llama3-8b-instruct
      targets: [{model: meta-llama/Llama-3.1-8B-Instruct, weight: 100}]
""")
    ext.edit("    - name: openai-completions\n      picker: {api_keys: true}\n", "")
    ext.edit("        - name: openai-completions\n          pool: openai-completions\n          base_path: /openai-completions\n", "")
    import yaml

    models = yaml.safe_load((ext.stacks / "Pulumi.external.yaml").read_text())["config"]["inference-gateway:models"]
    index = [m["name"] for m in models].index("gpt-instruct")
    r = ext.up(timeout=180)
    assert r.returncode == 1, r.stdout
    assert ("error: the update is refused (seed 004: an endpoint cannot be converted to or from an external model):\n"
            f"  models[{index}]: endpoint 'gpt-instruct' is an external endpoint and cannot be converted to a self-hosted model; "
            "create a new endpoint under another name (and remove this one)") in r.stderr
    _, report = ext.status()
    assert ext.endpoint(report, "gpt-instruct")["served_entities"][0]["external_model"]["name"] == "gpt-3.5-turbo-instruct"
