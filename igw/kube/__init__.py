"""A real Kubernetes control plane on loopback, for tests and local tools.

Public API (see each module's docstring):

- `LocalCluster(workdir, host=, base_port=, apiserver_args=)`: etcd + kube-apiserver +
  kube-controller-manager; `.start()/.stop()` (or `with`), `.server`, `.ca_file`, `.admin()`,
  `.client(token)`, `.service_account_token(ns, name)`, `.kubeconfig(name, token)`,
  `.admin_kubeconfig`, `.compact_etcd()`, `.audit_events()`, `.logs()`, `.startup_seconds`.
- `KubeClient`: server-side apply, get/list/create/patch/delete/watch, TokenRequest; `ApiError`.
- `find_binaries()`, `KUBERNETES_VERSION`, `MissingBinaries` (its message names the setup command).
- `write_kubeconfig(path, server, ca_file, user=, token= | token_file=)`.
"""

from .binaries import KUBERNETES_VERSION, SETUP_COMMAND, Binaries, MissingBinaries, find_binaries
from .client import ApiError, KubeClient, ResourceType, until
from .cluster import ClusterError, LocalCluster, find_free_host
from .kubeconfig import kubeconfig, write_kubeconfig

__all__ = [
    "KUBERNETES_VERSION", "SETUP_COMMAND", "ApiError", "Binaries", "ClusterError", "KubeClient", "LocalCluster",
    "MissingBinaries", "ResourceType", "find_binaries", "find_free_host", "kubeconfig", "until", "write_kubeconfig",
]
