"""How each runtime image runs hardened: the user it runs as and where it may write.

Every model-server pod runs non-root with a read-only root filesystem, no privilege escalation,
every capability dropped, the RuntimeDefault seccomp profile and no service-account token. An
image that writes under ``$HOME`` or ``/tmp`` keeps working because every cache it writes is
pointed at an emptyDir: ``/tmp`` (``tmp``), ``/cache`` (``cache``: ``HOME`` and every library
cache) and, for vLLM, ``/data`` (``HF_HOME``: the weights, counted against ephemeral-storage).

Facts per image (the row's ``source`` names where each comes from):

- ``vllm/vllm-openai`` has no ``USER`` and runs as root; any UID works once ``HOME`` and the
  caches are writable. torch resolves the user name through ``getpass.getuser()`` when it sets
  up its compile cache, which raises ``KeyError: getpwuid(): uid not found`` for a UID missing
  from ``/etc/passwd`` unless ``USER`` is set (llm-d/llm-d-benchmark#1573, vllm-project/vllm#46734);
  the cache variables are vLLM's own (``VLLM_CACHE_ROOT``, ``VLLM_CONFIG_ROOT``), Triton's
  (``TRITON_CACHE_DIR``), Inductor's (``TORCHINDUCTOR_CACHE_DIR``), numba's and outlines'.
  Inductor still puts its precompiled headers under ``/tmp/torchinductor_$USER`` whatever
  ``TORCHINDUCTOR_CACHE_DIR`` says (vllm-project/vllm#46734), so ``/tmp`` must be writable:
  about 150 MB there for the tiny model on the CPU build. Verified
  here by ``tests/real_vllm/test_hardened.py``: the real vLLM (CPU build, same
  ``vllm.entrypoints.openai.api_server``) started under the rendered context (UID 10001 with no
  passwd entry, read-only root, these mounts and this environment, no capabilities, no new
  privileges) serves a completion and writes only to the emptyDirs.
- The Open Data Hub images (caikit-tgis, caikit-standalone, tgis) are built for OpenShift, which
  runs every container as an arbitrary non-root UID.
- ``openvino/model_server`` ships the user ``ovms`` (UID 5000) and runs as it.
- ``nvcr.io/nvidia/tritonserver`` ships the user ``triton-server`` (UID 1000); other UIDs fail
  in its entrypoint (triton-inference-server/server#2600), which our ``command`` bypasses, but
  only the image's own user is known to work.

checkov's CKV_K8S_40 wants a UID of 10000 or more; the two images whose only known-good user is
below that have one waiver each in ``tests/checkov/waivers.yaml``, matched by image.
"""

from __future__ import annotations

from dataclasses import dataclass

HARDENED_UID = 10001
"""The UID for images that run as any user: above 10000 (no clash with host users)."""

TMP_DIR = "/tmp"
CACHE_DIR = "/cache"
HF_TOKEN_DIR = "/var/run/secrets/huggingface"
HF_TOKEN_FILE = f"{HF_TOKEN_DIR}/token"

CACHE_ENV: dict[str, str] = {
    "HOME": CACHE_DIR,
    "USER": "model-server",
    "XDG_CACHE_HOME": f"{CACHE_DIR}/xdg",
    "XDG_CONFIG_HOME": f"{CACHE_DIR}/config",
    "VLLM_CACHE_ROOT": f"{CACHE_DIR}/vllm",
    "VLLM_CONFIG_ROOT": f"{CACHE_DIR}/vllm-config",
    "TRITON_CACHE_DIR": f"{CACHE_DIR}/triton",
    "TORCHINDUCTOR_CACHE_DIR": f"{CACHE_DIR}/torchinductor",
    "NUMBA_CACHE_DIR": f"{CACHE_DIR}/numba",
    "OUTLINES_CACHE_DIR": f"{CACHE_DIR}/outlines",
}
"""Where every library the runtimes load writes: all under the ``cache`` emptyDir. ``USER``
makes ``getpass.getuser()`` work for a UID that ``/etc/passwd`` does not list."""

HF_TOKEN_ENV = {"HF_TOKEN_PATH": HF_TOKEN_FILE}
"""huggingface_hub reads the token from the file ``HF_TOKEN_PATH`` names (its default is
``$HF_HOME/token``): the token is a mounted file, never an environment variable."""


@dataclass(frozen=True)
class RuntimeUser:
    """The non-root user a runtime image runs as."""

    uid: int
    gid: int
    source: str
    """Why this UID works for the image."""


_ARBITRARY = "runs as any UID once HOME and its caches are writable"

RUNTIME_USERS: dict[str, RuntimeUser] = {
    "vllm": RuntimeUser(HARDENED_UID, HARDENED_UID, f"vllm/vllm-openai has no USER; {_ARBITRARY} and USER is set"),
    "caikit-tgis": RuntimeUser(HARDENED_UID, HARDENED_UID, f"Open Data Hub image built for OpenShift's arbitrary UIDs; {_ARBITRARY}"),
    "caikit-standalone": RuntimeUser(HARDENED_UID, HARDENED_UID, f"Open Data Hub image built for OpenShift's arbitrary UIDs; {_ARBITRARY}"),
    "tgis": RuntimeUser(HARDENED_UID, HARDENED_UID, f"Open Data Hub image built for OpenShift's arbitrary UIDs; {_ARBITRARY}"),
    "openvino": RuntimeUser(5000, 5000, "openvino/model_server's own user ovms (UID 5000); other UIDs are untested"),
    "triton": RuntimeUser(
        1000, 1000, "tritonserver's own user triton-server (UID 1000); its entrypoint fails for other UIDs "
        "(triton-inference-server/server#2600)"
    ),
}

LORA_SYNCER_USER = RuntimeUser(HARDENED_UID, HARDENED_UID, "a Python script that reads a mounted file and calls vLLM's API; writes nothing")


def runtime_user(runtime: str) -> RuntimeUser:
    """The user for a runtime preset (every preset has a row; a test keeps them in step)."""
    return RUNTIME_USERS[runtime]


def server_user(server) -> RuntimeUser:
    """The user a model server runs as: its runtime's, or ``runtime_overrides.run_as_user``
    (for a custom image; 0 means the image needs root and the pod cannot be hardened)."""
    base = runtime_user(server.runtime)
    uid = server.runtime_overrides.run_as_user
    if uid is None:
        return base
    return RuntimeUser(uid, uid, f"runtime_overrides.run_as_user: {uid}")
