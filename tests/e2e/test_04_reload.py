"""Changing the stack file and running `igw up` again applies the change to the running stack
(90/10 → 50/50) without dropping requests in flight; a broken stack file changes nothing."""

from __future__ import annotations

import collections
import threading
import time

from .conftest import BASE_MODEL, ROOT, igw, run_load


def _stack_copy(tmp_path, text_edit) -> str:
    d = tmp_path / "stacks"
    d.mkdir(exist_ok=True)
    src = (ROOT / "stacks" / "Pulumi.local.yaml").read_text()
    new = text_edit(src)
    assert new != src
    (d / "Pulumi.local.yaml").write_text(new)
    return str(d)


def test_broken_stack_file_leaves_the_running_stack_alone(local_stack, tmp_path):
    before = local_stack.state()
    stacks = _stack_copy(tmp_path, lambda s: s.replace("criticality: Sheddable", "criticality: Whenever"))
    r = igw("up", "--stack", "local", "--stacks-dir", stacks, "--state-dir", str(local_stack.state_dir))
    assert r.returncode == 1
    assert "criticality" in r.stderr and "Whenever" in r.stderr
    after = local_stack.state()
    assert after["generation"] == before["generation"] and after["status"] == "ready"
    assert local_stack.client().models.list().data


def test_rerun_applies_50_50_without_dropping_requests(local_stack, tmp_path):
    client = local_stack.client()
    picker_before = local_stack.picker()
    gen_before = local_stack.state()["generation"]
    stop = threading.Event()
    outcomes: list[str] = []
    user = f"reload-bg-{time.monotonic_ns()}"

    def background(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                stream = client.chat.completions.create(
                    model="food-review" if i % 2 else BASE_MODEL, max_tokens=32, stream=True,
                    messages=[{"role": "user", "content": f"bg {k} {i}"}], extra_headers={"x-user-id": f"{user}-{k}"})
                n = sum(1 for _ in stream)
                outcomes.append("ok" if n else "empty")
            except Exception as e:  # noqa: BLE001
                outcomes.append(repr(e))
            time.sleep(0.05)  # light load: the re-render (synth) shares the 2 cores

    workers = [threading.Thread(target=background, args=(k,), daemon=True) for k in range(3)]
    for w in workers:
        w.start()
    try:
        stacks = _stack_copy(tmp_path, lambda s: s.replace("weight: 90}", "weight: 50}").replace("weight: 10}", "weight: 50}"))
        r = igw("up", "--stack", "local", "--stacks-dir", stacks, "--state-dir", str(local_stack.state_dir), timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "traffic split updated" in r.stdout
        assert "food-review=50, food-review-v2=50" in r.stdout
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    failures = [o for o in outcomes if o != "ok"]
    assert len(outcomes) > 20 and not failures, (len(outcomes), collections.Counter(failures).most_common(3))
    st = local_stack.state()
    assert st["generation"] == gen_before + 1
    # The pickers hot-reloaded the rewritten manifests: same process, no restart.
    assert local_stack.picker()["pid"] == picker_before["pid"]

    tag = f"split50-{time.monotonic_ns()}"
    n = 600
    # four users (four client addresses): the 600/min per-user limit on food-review never applies
    results = run_load(lambda i: local_stack.client_for(f"{tag}-{i % 4}").chat.completions.with_raw_response.create(
        model="food-review", messages=[{"role": "user", "content": f"after {i}"}], max_tokens=1,
        extra_headers={"x-user-id": f"{tag}-{i % 4}"}).status_code, n, concurrency=16, timeout=90)
    assert results == [200] * n
    rows = local_stack.access_log(lambda r: (r["user"] or "").startswith(tag), n)
    served = collections.Counter(r["model"] for r in rows)
    # binomial sd at p=0.5, n=600 is 0.02: +-0.08 is 4 sd
    assert abs(served["food-review-v2"] / n - 0.5) < 0.08, served


def test_replicas_and_picker_config_change_without_dropping_requests(local_stack, tmp_path):
    """A render with one replica less and a different picker config (rate limit), applied under
    streaming load, then the original render again: the leaving replica drains first, the new
    picker takes new streams while the old one finishes its own; nothing fails."""
    import shutil

    import yaml

    original = local_stack.state_dir / "render" / "manifests"
    changed = tmp_path / "manifests"
    shutil.copytree(original, changed)
    (dep,) = changed.glob("*-deployment-*-vllm-llama3-8b-instruct.yaml")
    doc = yaml.safe_load(dep.read_text())
    doc["spec"]["replicas"] = 3
    dep.write_text(yaml.safe_dump(doc))
    (cm,) = changed.glob("*-configmap-*-vllm-llama3-8b-instruct-epp.yaml")
    doc = yaml.safe_load(cm.read_text())
    cfg = yaml.safe_load(doc["data"]["picker.yaml"])
    cfg["rate_limits"][0]["calls"] = 300
    doc["data"]["picker.yaml"] = yaml.safe_dump(cfg)
    cm.write_text(yaml.safe_dump(doc))

    client = local_stack.client()
    picker_before = local_stack.picker()["pid"]
    stop = threading.Event()
    outcomes: list[str] = []

    def background(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                n = sum(1 for _ in client.chat.completions.create(
                    model=BASE_MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": f"{k} {i}"}],
                    extra_headers={"x-user-id": f"churn-{k}"}))
                outcomes.append("ok" if n else "empty")
            except Exception as e:  # noqa: BLE001
                outcomes.append(repr(e))

    workers = [threading.Thread(target=background, args=(k,), daemon=True) for k in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        r = igw("up", "--stack", "local", "--from-manifests", str(changed), "--state-dir", str(local_stack.state_dir))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "replica vllm-llama3-8b-instruct-3 removed" in r.stdout
        assert "restarted with new config" in r.stdout
        assert len(local_stack.procs("simulator")) == 3
        assert local_stack.picker()["pid"] != picker_before
        r = igw("up", "--stack", "local", "--from-manifests", str(original), "--state-dir", str(local_stack.state_dir))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "replica vllm-llama3-8b-instruct-3 added" in r.stdout
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    failures = [o for o in outcomes if o != "ok"]
    assert len(outcomes) > 20 and not failures, (len(outcomes), collections.Counter(failures).most_common(3))
    local_stack.wait_all_ready()
    assert len(local_stack.procs("simulator")) == 4 and len(local_stack.procs("picker")) == 1
