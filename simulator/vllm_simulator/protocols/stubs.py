"""Python stubs for the runtimes' gRPC APIs, generated from the .proto files next to this module.

`protos/runtime_pb/` holds our own .proto files for the public APIs (caikit NlpService and
InfoService, TGIS fmaas.GenerationService, KServe v2 GRPCInferenceService). At first use they
are compiled with grpcio-tools (`grpc_tools.protoc`, the same as running
`python -m grpc_tools.protoc -I protos --python_out=OUT --grpc_python_out=OUT protos/runtime_pb/**/*.proto`)
into a cache folder keyed by the hash of the .proto files and the grpcio-tools version:
`$IGW_CACHE_DIR/grpc-stubs/<key>/` (default `~/.cache/inference-gateway`). Nothing generated is
committed; a changed .proto gets a new folder. Generation takes well under a second and happens
once per machine (atomically: a temporary folder renamed into place, so concurrent processes
never import a half-written one).

    from vllm_simulator.protocols.stubs import load
    tgis = load("fmaas")          # .pb (messages) and .grpc (stubs, servicers)
    tgis.pb.BatchedGenerationRequest(requests=[tgis.pb.GenerationRequest(text="hi")])
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

PROTO_ROOT = Path(__file__).parent / "protos"
PACKAGE = "runtime_pb"
# API name -> the .proto file (under protos/runtime_pb) whose service and messages it uses.
APIS = {
    "caikit_nlp": "caikit/runtime_nlp.proto",
    "caikit_info": "caikit/runtime_info.proto",
    "caikit_data": "caikit/nlp.proto",
    "caikit_nlp_data": "caikit/caikit_nlp.proto",
    "caikit_common": "caikit/common.proto",
    "fmaas": "fmaas/generation.proto",
    "kserve": "kserve/grpc_predict_v2.proto",
}


@dataclass(frozen=True)
class Api:
    pb: ModuleType
    """Messages (`<file>_pb2`)."""
    grpc: ModuleType
    """Client stubs and servicer base classes (`<file>_pb2_grpc`)."""


def _proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE).rglob("*.proto"))


def _cache_key() -> str:
    """Hash of the .proto files and the generator (grpcio-tools) and runtime (protobuf) versions."""
    from importlib.metadata import version

    h = hashlib.sha256()
    for f in _proto_files():
        h.update(f.relative_to(PROTO_ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(f"grpcio-tools {version('grpcio-tools')} protobuf {version('protobuf')}".encode())
    return h.hexdigest()[:16]


def stubs_dir() -> Path:
    base = Path(os.environ.get("IGW_CACHE_DIR") or Path.home() / ".cache" / "inference-gateway")
    return base / "grpc-stubs" / _cache_key()


def generate(out: Path) -> None:
    """Compile every .proto file into `out` (raises RuntimeError with protoc's exit code)."""
    from grpc_tools import protoc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [f.relative_to(PROTO_ROOT).as_posix() for f in _proto_files()]
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({code}) for {', '.join(files)}")


def ensure_generated() -> Path:
    """The stubs folder (on sys.path), generating it first if this machine has none yet."""
    target = stubs_dir()
    if not (target / PACKAGE).is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=target.parent))
        try:
            generate(tmp)
            try:
                os.rename(tmp, target)
            except OSError:  # another process won the race: use its copy
                if not (target / PACKAGE).is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    return target


def load(api: str) -> Api:
    """Messages and gRPC stubs of one API (see APIS)."""
    if api not in APIS:
        raise KeyError(f"unknown API {api!r}; known: {', '.join(sorted(APIS))}")
    ensure_generated()
    module = f"{PACKAGE}." + APIS[api][: -len(".proto")].replace("/", ".")
    return Api(importlib.import_module(module + "_pb2"), importlib.import_module(module + "_pb2_grpc"))
