"""The tiny model is deterministic: a fresh build has the same bytes as the cached one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .server import ROOT


def test_a_fresh_build_matches_the_cache(vllm_env, tmp_path):
    info = vllm_env
    out = tmp_path / "tiny-model"
    # Another hash seed: set/dict order inside the libraries must not reach the files.
    env = {**os.environ, "PYTHONHASHSEED": "12345", **info["process_env"]}
    done = subprocess.run([info["python"], str(ROOT / "vllm_cpu" / "make_tiny_model.py"), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    fresh = json.loads((out / "manifest.json").read_text())
    cached = json.loads((Path(info["model_root"]) / "manifest.json").read_text())
    assert fresh["files"] == cached["files"]
    assert fresh["recipe_hash"] == cached["recipe_hash"] == Path(info["model_root"]).name.removeprefix("tiny-model-")
