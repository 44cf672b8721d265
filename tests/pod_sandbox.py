"""Run a local process the way Kubernetes would run a rendered container (tests only; needs root).

``PodSandbox.from_deployment`` reads a rendered Deployment's pod and container: the security
context (user, group, fsGroup, read-only root filesystem, no privilege escalation, dropped
capabilities), the volume mounts (emptyDir, in-memory emptyDir, Secret) and the environment.
``PodSandbox.argv`` turns that into a command line for this machine:

* ``unshare -m``: a private mount namespace, so nothing below is visible outside the process;
* a new root on a tmpfs with the host's system directories bind-mounted read-only, ``/root``
  replaced by an empty tmpfs (the host paths the process needs, such as the vLLM environment,
  bound back read-only), ``/run`` empty as in an image, and each volume mount at its
  ``mountPath``: emptyDirs as writable host directories (mode 2777, group fsGroup, as the
  kubelet makes them), Secrets as files of ``defaultMode`` owned by root and the fsGroup;
* the new root remounted read-only when ``readOnlyRootFilesystem`` is true, then ``chroot``;
* ``setpriv``: the container's UID and GID, the fsGroup as a supplementary group, no new
  privileges (``allowPrivilegeEscalation: false``), and an empty bounding and inheritable
  capability set (``capabilities.drop: [ALL]``);
* ``env -i``: exactly the container's environment plus what the caller adds (PATH).

Not reproduced: the seccomp profile (the container runtime's RuntimeDefault; no-new-privileges,
which it requires, is), the pod network (the process uses the host's loopback), cgroup limits.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_DIRS = ("bin", "etc", "lib", "lib32", "lib64", "libx32", "opt", "sbin", "usr", "var")
"""Host directories the new root shows (read-only); symlinks among them are copied as links."""
EMPTY_DIRS = ("root", "run", "home")
"""Present but empty, as in a container image (tmpfs): the host's content stays out of sight."""


class SandboxError(ValueError):
    """The rendered pod asks for something the sandbox cannot reproduce (or omits what it needs)."""


@dataclass(frozen=True)
class VolumeMount:
    path: str
    kind: str
    """``emptyDir``, ``memory`` (emptyDir with medium Memory) or ``secret``."""
    read_only: bool
    name: str
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    """For secrets: file name -> (content, mode)."""


@dataclass(frozen=True)
class PodSandbox:
    uid: int
    gid: int
    fs_group: int | None
    read_only_root: bool
    no_new_privs: bool
    drop_all_capabilities: bool
    env: dict[str, str]
    mounts: tuple[VolumeMount, ...]

    @classmethod
    def from_deployment(cls, deployment: dict[str, Any], container: str, secrets: dict[str, dict[str, str]]) -> "PodSandbox":
        """``secrets``: Secret name -> {key: value}, the values the rendered (masked) Secrets hold."""
        pod = deployment["spec"]["template"]["spec"]
        found = [c for c in pod.get("containers", []) if c["name"] == container]
        if not found:
            raise SandboxError(f"no container {container!r} in {deployment['metadata']['name']}")
        c = found[0]
        psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        gid = csc.get("runAsGroup", psc.get("runAsGroup"))
        if uid is None or gid is None:
            raise SandboxError(f"container {container!r}: no runAsUser/runAsGroup; the image's own user is not known here")
        if uid == 0:
            raise SandboxError(f"container {container!r} runs as root: nothing to verify")
        env: dict[str, str] = {}
        for e in c.get("env") or []:
            if "value" not in e:
                raise SandboxError(f"env {e['name']}: only literal values are reproduced (got {sorted(e)})")
            env[e["name"]] = e["value"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        mounts = []
        for m in c.get("volumeMounts") or []:
            volume = volumes[m["name"]]
            read_only = bool(m.get("readOnly"))
            if "emptyDir" in volume:
                kind = "memory" if (volume["emptyDir"] or {}).get("medium") == "Memory" else "emptyDir"
                mounts.append(VolumeMount(m["mountPath"], kind, read_only, m["name"]))
            elif "secret" in volume:
                spec = volume["secret"]
                values = secrets.get(spec["secretName"])
                if values is None:
                    raise SandboxError(f"volume {m['name']}: no value given for Secret {spec['secretName']!r}")
                mode = spec.get("defaultMode", 0o644)
                items = spec.get("items") or [{"key": k, "path": k} for k in values]
                files = {i["path"]: (values[i["key"]], i.get("mode", mode)) for i in items}
                mounts.append(VolumeMount(m["mountPath"], "secret", True, m["name"], files))
            else:
                raise SandboxError(f"volume {m['name']}: only emptyDir and secret volumes are reproduced ({sorted(volume)})")
        caps = csc.get("capabilities") or {}
        return cls(
            uid=uid, gid=gid, fs_group=psc.get("fsGroup"),
            read_only_root=csc.get("readOnlyRootFilesystem") is True,
            no_new_privs=csc.get("allowPrivilegeEscalation") is False,
            drop_all_capabilities="ALL" in (caps.get("drop") or []) and not caps.get("add"),
            env=env, mounts=tuple(mounts),
        )

    def host_dir(self, workdir: Path, mount: VolumeMount) -> Path:
        """Where an emptyDir's (or a Secret's) files live on the host."""
        return workdir / "volumes" / mount.name

    def prepare(self, workdir: Path) -> None:
        """Create each volume's host directory with the ownership and modes the kubelet gives it."""
        group = self.fs_group if self.fs_group is not None else 0
        for m in self.mounts:
            d = self.host_dir(workdir, m)
            d.mkdir(parents=True, exist_ok=True)
            if m.kind == "secret":
                os.chmod(d, 0o755)
                for name, (content, mode) in m.files.items():
                    f = d / name
                    f.write_text(content)
                    os.chown(f, 0, group)
                    os.chmod(f, mode)
            elif m.kind == "emptyDir":
                os.chown(d, 0, group)
                os.chmod(d, 0o2777)

    def argv(self, workdir: Path, command: list[str], bind_back: list[Path], extra_env: dict[str, str] | None = None) -> list[str]:
        """The command line that runs ``command`` inside the sandbox (call ``prepare`` first).
        ``bind_back``: host paths the process reads that ``EMPTY_DIRS`` hide (read-only)."""
        root = workdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        q = shlex.quote
        r = q(str(root))
        lines = ["set -eu", f"mount -t tmpfs -o mode=755 igw-pod-root {r}"]
        for d in SYSTEM_DIRS:
            host = Path("/") / d
            if host.is_symlink():
                lines.append(f"ln -s {q(os.readlink(host))} {r}/{d}")
            elif host.is_dir():
                lines += [f"mkdir {r}/{d}", f"mount --rbind /{d} {r}/{d}", f"mount -o remount,bind,ro {r}/{d}"]
        for d in ("proc", "sys", "dev"):
            lines += [f"mkdir {r}/{d}", f"mount --rbind /{d} {r}/{d}"]
        for d in EMPTY_DIRS:
            lines += [f"mkdir {r}/{d}", f"mount -t tmpfs -o mode=755 igw-empty {r}/{d}"]
        for path in bind_back:
            target = f"{r}{q(str(path))}"
            lines += [f"mkdir -p {target}", f"mount --bind {q(str(path))} {target}", f"mount -o remount,bind,ro {target}"]
        for m in self.mounts:
            target = f"{r}{q(self._inside(m.path))}"
            lines.append(f"mkdir -p {target}")
            if m.kind == "memory":
                lines.append(f"mount -t tmpfs -o mode=1777 igw-{q(m.name)} {target}")
            else:
                lines.append(f"mount --bind {q(str(self.host_dir(workdir, m)))} {target}")
            if m.read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        lines.append(f"mount -o remount,bind,ro {r}/sys")
        if self.read_only_root:
            lines += [f"mount -o remount,ro {r}/{d}" for d in EMPTY_DIRS] + [f"mount -o remount,ro {r}"]
        setpriv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}"]
        setpriv.append(f"--groups={self.fs_group}" if self.fs_group is not None else "--clear-groups")
        if self.no_new_privs:
            setpriv.append("--no-new-privs")
        if self.drop_all_capabilities:
            setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
        env = {**self.env, **(extra_env or {})}
        inner = ["chroot", str(root), *setpriv, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], *command]
        lines.append("exec " + " ".join(q(a) for a in inner))
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines)]

    @staticmethod
    def _inside(path: str) -> str:
        """``path`` as the new root resolves it: the host's top-level symlinks (``/var/run`` ->
        ``/run``) are the new root's too."""
        parts = Path(path).parts
        for i in range(2, len(parts) + 1):
            prefix = Path(*parts[:i])
            if prefix.is_symlink():
                target = Path(os.readlink(prefix))
                target = target if target.is_absolute() else prefix.parent / target
                return str(target / Path(*parts[i:])) if parts[i:] else str(target)
        return path
