"""The GCP half of InferencePlatform for a cluster the stack does not create (cluster.existing).

No APIs, network, cluster or node pools: only what the serving layer itself needs from GCP,
each when configured (picker image build, Model Armor templates), and how to reach the cluster:
the kubeconfig path or the secret config value `kubeconfig` (rules in
components/config/existing_cluster.py).
"""

from __future__ import annotations

import pulumi

from .config import StackConfig
from .gcp_infrastructure import GcpInfrastructure
from .model_armor import ModelArmor, ModelArmorArgs
from .egress_identities import EgressIdentities, EgressIdentitiesArgs
from .picker_image import PickerImage, PickerImageArgs
from .secrets import StackSecrets


def existing_cluster_kubeconfig(cfg: StackConfig, secrets: StackSecrets) -> pulumi.Input[str]:
    """The path from cluster.existing.kubeconfig, else the secret config value `kubeconfig`
    (a Pulumi secret: encrypted in state and masked in previews)."""
    existing = cfg.cluster.existing
    assert existing is not None
    contents = secrets.get("kubeconfig")
    if existing.kubeconfig is not None and contents is not None:
        raise pulumi.RunError(
            f"cluster.existing.kubeconfig: {existing.kubeconfig!r} and the secret config value kubeconfig are both set; "
            "keep one (`pulumi config rm kubeconfig` to use the path)"
        )
    if existing.kubeconfig is not None:
        return existing.kubeconfig
    if contents is None:
        # RunError: Pulumi prints the message without a traceback (like invalid config).
        raise pulumi.RunError(
            "cluster.existing.kubeconfig: give the path of the cluster's kubeconfig, or its contents as the secret "
            "config value kubeconfig (`pulumi config set --secret kubeconfig < ~/.kube/config`)"
        )
    return contents


def build_existing_cluster(name: str, cfg: StackConfig, child: pulumi.ResourceOptions, secrets: StackSecrets) -> GcpInfrastructure:
    existing = cfg.cluster.existing
    assert existing is not None
    picker = PickerImage(f"{name}-picker-image", PickerImageArgs(config=cfg), opts=child)
    armor = None
    if cfg.model_armor is not None:
        armor = ModelArmor(f"{name}-model-armor", ModelArmorArgs(config=cfg, model_armor=cfg.model_armor), opts=child)
    return GcpInfrastructure(
        apis=None,
        network=None,
        cluster=None,
        node_pools=[],
        picker=picker,
        model_armor=armor,
        kubeconfig=existing_cluster_kubeconfig(cfg, secrets),
        kubeconfig_context=existing.context,
        picker_image=picker.ref,
        model_armor_templates=armor.templates if armor is not None else {},
        cluster_ready=[],
        exports={"clusterName": cfg.cluster.name, "pickerImage": picker.ref},
        # External models' Secret Manager readers (the cluster must run GKE's Secret Manager add-on).
        egress_identities=EgressIdentities(f"{name}-egress-identities", EgressIdentitiesArgs(config=cfg), opts=child)
        if any(m.external is not None and m.external.secret.kind == "secret-manager" for m in cfg.models) else None,
    )
