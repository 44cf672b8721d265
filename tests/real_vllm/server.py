"""Start, wait for and stop real vLLM CPU servers serving the tiny model (tests and the recorder).

Paths come from `vllm_cpu/locate.py` (the one place that knows them); `.ci/setup-vllm` prepares
what it points at. A server runs `python -m vllm.entrypoints.openai.api_server` in its own
process group (vLLM starts an engine-core child; both go down together).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOCATE = ROOT / "vllm_cpu" / "locate.py"
START_TIMEOUT_S = float(os.environ.get("IGW_VLLM_START_TIMEOUT_S", "900"))
"""vLLM's start-up is mostly imports in four processes: 4-7 min on a loaded 2-core machine."""


def locate() -> dict:
    out = subprocess.run([sys.executable, str(LOCATE), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def missing_reason(info: dict) -> str | None:
    """Why the real-vLLM tier cannot run here, or None when the env and the tiny model are ready."""
    missing = [what for what, ready in (("the vLLM environment", info["env_ready"]), ("the tiny model", info["model_ready"])) if not ready]
    if not missing:
        return None
    return f"{' and '.join(missing)} not prepared ({info['env_dir']}, {info['model_root']}): run {info['setup_command']}"


@dataclass
class ServerSpec:
    """One vLLM server: what it serves and how much KV cache and how many LoRA slots it has."""

    name: str
    host: str
    port: int
    served_model_name: str = "tiny"
    adapters: tuple[str, ...] = ("tiny-lora-a", "tiny-lora-b")
    max_loras: int = 2
    max_num_seqs: int = 8
    max_model_len: int = 1024
    num_gpu_blocks: int | None = None
    """--num-gpu-blocks-override: a small number gives real KV pressure (a block is 128 tokens on CPU)."""
    extra_args: tuple[str, ...] = ()
    index: int = 0
    """Which of the servers started together this is: the core its engine is bound to."""

    def core_env(self, info: dict) -> dict[str, str]:
        binding = info["core_binding"]
        return binding[self.index % len(binding)]

    def argv(self, info: dict) -> list[str]:
        args = [
            info["python"], "-m", info["server_module"],
            "--model", info["model_dir"], "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(self.port),
            "--max-model-len", str(self.max_model_len), "--max-num-seqs", str(self.max_num_seqs),
            "--enable-prefix-caching", "--chat-template", info["chat_template"],
        ]
        if self.adapters:
            args += ["--enable-lora", "--max-loras", str(self.max_loras), "--max-lora-rank", "8",
                     "--lora-modules", *[f"{a}={info['adapters'][a]}" for a in self.adapters]]
        if self.num_gpu_blocks is not None:
            args += ["--num-gpu-blocks-override", str(self.num_gpu_blocks)]
        return args + list(self.extra_args)


@dataclass
class VllmServer:
    spec: ServerSpec
    log_path: Path
    info: dict
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    ready_after_s: float | None = None
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60, headers={"connection": "close"}))
    """A connection per request: under held load uvicorn resets kept-alive connections now and then
    ('Connection reset by peer', 'Server disconnected without sending a response' on /metrics)."""

    @property
    def url(self) -> str:
        return f"http://{self.spec.host}:{self.spec.port}"

    @property
    def key(self) -> str:
        """host:port, the form Envoy and the picker name an endpoint by."""
        return f"{self.spec.host}:{self.spec.port}"

    def start(self) -> "VllmServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        env = {**os.environ, **self.info["process_env"], **self.spec.core_env(self.info)}
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.spec.argv(self.info), stdout=log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True, cwd=self.log_path.parent)
        log.close()
        return self

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, deadline: float) -> None:
        """Until /health answers 200 and /v1/models lists the model; raise with the log tail on
        exit or at `deadline` (time.monotonic())."""
        assert self.proc is not None, "start() first"
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(f"vLLM {self.spec.name} exited with {code} while starting; log tail:\n{self.log_tail()}")
            try:
                if self.client.get(self.url + "/health", timeout=2).status_code == 200:
                    ids = {m["id"] for m in self.client.get(self.url + "/v1/models", timeout=5).json()["data"]}
                    if self.spec.served_model_name in ids:
                        self.ready_after_s = time.monotonic() - self.started_at
                        return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"vLLM {self.spec.name} not ready after {time.monotonic() - self.started_at:.0f} s; "
                                   f"log tail:\n{self.log_tail()}")
            time.sleep(1.0)

    def metrics(self) -> bytes:
        r = self.client.get(self.url + "/metrics", timeout=30)
        r.raise_for_status()
        return r.content

    def stop(self, grace_s: float = 20) -> None:
        self.client.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the server's pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        try:  # the engine core may outlive the API server by a moment
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_all(specs: list[ServerSpec], log_dir: Path, timeout_s: float = START_TIMEOUT_S) -> list[VllmServer]:
    """Start every server at once (start-up is import-bound: they overlap well), wait for all."""
    info = locate()
    reason = missing_reason(info)
    if reason:
        raise RuntimeError(reason)
    servers = [VllmServer(replace(s, index=i), log_dir / f"vllm-{s.name}.log", info).start()
               for i, s in enumerate(specs)]
    deadline = time.monotonic() + timeout_s
    try:
        for s in servers:
            s.wait_ready(deadline)
    except BaseException:
        for s in servers:
            s.stop(grace_s=5)
        raise
    return servers
