"""Stack config for the GCP side: network, cluster, GPU node pools, picker image, Model Armor."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..catalog.machines import GpuMachine, gpu_machine
from ._base import Strict, cidr, dns_label
from .existing_cluster import ExistingClusterConfig

Cidr = Annotated[str, AfterValidator(cidr)]
Name = Annotated[str, AfterValidator(dns_label)]

MIN_GKE_VERSION = (1, 32, 3)


class ApisConfig(Strict):
    """Which Google APIs the stack enables (projects.Service)."""

    enable: bool = True
    """Set false when a platform team already manages APIs for the project."""
    disable_on_destroy: bool = False
    """False (default) leaves the APIs enabled when the stack is destroyed: other workloads in the
    project may depend on them. True disables them on destroy."""


class ProxyOnlySubnetConfig(Strict):
    region: str
    cidr: Cidr = "10.129.0.0/23"
    existing: str | None = None
    """Name of an ACTIVE proxy-only subnet that already exists in this VPC and region: adopt it
    instead of creating one (there can be only one per VPC and region)."""

    @field_validator("cidr")
    @classmethod
    def _big_enough(cls, v: str) -> str:
        if int(v.split("/")[1]) > 26:
            raise ValueError(f"{v!r} is too small; a proxy-only subnet needs at least /26 (64 addresses), /23 is usual")
        return v


class NetworkConfig(Strict):
    """VPC-native networking. Either create everything or adopt an existing VPC / subnet by name."""

    existing_network: str | None = None
    """Adopt this VPC (by name) instead of creating one."""
    existing_subnet: str | None = None
    """Adopt this node subnet (needs existing_network); it must already carry the pod and service
    secondary ranges named below."""
    node_subnet_cidr: Cidr = "10.0.0.0/20"
    pods_range_name: Name = "pods"
    pods_cidr: Cidr = "10.4.0.0/14"
    services_range_name: Name = "services"
    services_cidr: Cidr = "10.8.0.0/20"
    proxy_only_subnets: list[ProxyOnlySubnetConfig] | None = None
    """Default: one /23 (10.129.0.0/23) in the stack's region."""
    nat: bool | None = None
    """Cloud Router + NAT for the node subnet (egress for private nodes: Hugging Face, other
    registries). Default: on when cluster.private_nodes. Set false when the adopted VPC already
    gives the subnet egress (a subnet range can be served by only one NAT)."""

    @model_validator(mode="after")
    def _adopt_needs_network(self):
        if self.existing_subnet and not self.existing_network:
            raise ValueError(
                f"existing_subnet {self.existing_subnet!r} needs existing_network: name the VPC the subnet belongs to"
            )
        if self.pods_range_name == self.services_range_name:
            raise ValueError(
                f"pods_range_name and services_range_name are both {self.pods_range_name!r}; "
                "the pod and service secondary ranges need different names"
            )
        return self


class ClusterConfig(Strict):
    existing: ExistingClusterConfig | None = None
    """Deploy onto a cluster that already exists instead of creating one (bring your own
    cluster): only the serving layer is created. See components/config/existing_cluster.py."""
    name: Name | None = None
    """Default: <name_prefix>-gke. With `existing`: the existing GKE cluster's name."""
    min_master_version: str = "1.32.3"
    """A floor: GKE upgrades within the release channel. Inference Gateway needs >= 1.32.3.
    With `existing`: the version the cluster runs at least (GKE installs InferencePool v1 itself
    from 1.34.0-gke.1626000, so the stack installs that CRD only below it)."""
    release_channel: Literal["RAPID", "REGULAR", "STABLE", "EXTENDED", "UNSPECIFIED"] = "REGULAR"
    networking_mode: Literal["VPC_NATIVE"] = "VPC_NATIVE"
    """Gateway API only works on VPC-native clusters: ROUTES is rejected."""
    regional: bool = True
    """Regional control plane (location = region); false puts it in the first zone."""
    private_nodes: bool = False
    private_endpoint: bool = False
    master_cidr: Cidr = "172.16.0.0/28"
    master_global_access: bool = False
    master_authorized_networks: list[Cidr] = []
    deletion_protection: bool | None = None
    """Default: on in production stacks, off otherwise."""
    system_pool_machine_type: str = "e2-standard-4"
    system_pool_min_nodes: int = Field(1, ge=0)
    system_pool_max_nodes: int = Field(3, ge=1)
    h100_zones_override: list[str] | None = None
    """Zones where your project has H100 capacity, when it is not in the known list."""

    @field_validator("networking_mode", mode="before")
    @classmethod
    def _vpc_native(cls, v):
        if v == "ROUTES":
            raise ValueError("'ROUTES' is not supported; GKE Inference Gateway needs a VPC-native cluster (use VPC_NATIVE)")
        return v

    @field_validator("min_master_version")
    @classmethod
    def _floor(cls, v: str) -> str:
        m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?(-gke\.\d+)?$", v)
        if not m:
            raise ValueError(f"{v!r} is not a GKE version like 1.32.3 or 1.33.2-gke.1335000")
        version = (int(m[1]), int(m[2]), int(m[3] or 0))
        if version < MIN_GKE_VERSION:
            raise ValueError(f"{v!r} is too old; GKE Inference Gateway needs 1.32.3 or later")
        return v

    @model_validator(mode="after")
    def _private(self):
        if self.private_endpoint and not self.private_nodes:
            raise ValueError("private_endpoint needs private_nodes: true")
        if self.master_global_access and not self.private_nodes:
            raise ValueError("master_global_access applies to private clusters only; set private_nodes: true or remove it")
        if int(self.master_cidr.split("/")[1]) != 28:
            raise ValueError(f"master_cidr {self.master_cidr!r} must be a /28")
        if self.system_pool_min_nodes > self.system_pool_max_nodes:
            raise ValueError("system_pool_min_nodes is larger than system_pool_max_nodes")
        return self

    @property
    def gke(self) -> bool:
        """The stack deploys onto GKE: a cluster it creates, or an existing one with gke: true."""
        return self.existing is None or self.existing.gke

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", self.min_master_version)
        assert m
        return int(m[1]), int(m[2]), int(m[3] or 0)


class AutoscalingConfig(Strict):
    """Per-zone (min_nodes/max_nodes) or whole-pool (total_*) limits, never both."""

    min_nodes: int | None = Field(None, ge=0)
    max_nodes: int | None = Field(None, ge=0)
    total_min_nodes: int | None = Field(None, ge=0)
    total_max_nodes: int | None = Field(None, ge=0)
    location_policy: Literal["BALANCED", "ANY"] = "ANY"
    """ANY prefers unused reservations and lowers Spot preemption risk."""

    @model_validator(mode="after")
    def _one_kind(self):
        per_zone = self.min_nodes is not None or self.max_nodes is not None
        total = self.total_min_nodes is not None or self.total_max_nodes is not None
        if per_zone and total:
            given = ", ".join(
                f"{k}={getattr(self, k)}"
                for k in ("min_nodes", "max_nodes", "total_min_nodes", "total_max_nodes")
                if getattr(self, k) is not None
            )
            raise ValueError(f"{given}: set per-zone min_nodes/max_nodes or total_min_nodes/total_max_nodes, not both")
        if not per_zone and not total:
            raise ValueError("set max_nodes (per zone) or total_max_nodes (whole pool)")
        lo, hi = (self.min_nodes, self.max_nodes) if per_zone else (self.total_min_nodes, self.total_max_nodes)
        if hi is None:
            raise ValueError("set max_nodes" if per_zone else "set total_max_nodes")
        if lo is not None and lo > hi:
            raise ValueError(f"minimum {lo} is larger than maximum {hi}")
        return self


class GpuNodePoolConfig(Strict):
    """An H100 node pool. The machine type decides the accelerator type and count."""

    name: Name | None = None
    """Default: accelerator, count and machine, e.g. gpu-h100x8-a3h8 (-spot / -dws / -res)."""
    machine_type: str = "a3-highgpu-8g"
    node_locations: list[str] | None = None
    """Zones of the pool; default: the stack's zones."""
    provisioning: Literal["on-demand", "spot", "flex-start", "reservation"] = "on-demand"
    reservation: str | None = None
    """Name of a specific reservation (provisioning: reservation)."""
    max_run_duration: str | None = None
    """Flex-start VMs run at most this long, e.g. '604800s' (7 days, the maximum)."""
    autoscaling: AutoscalingConfig = AutoscalingConfig(min_nodes=0, max_nodes=1)
    initial_node_count: int = Field(0, ge=0)
    gpu_driver_version: Literal["DEFAULT", "LATEST"] = "LATEST"
    local_ssd_count: int | None = Field(None, ge=0)
    """Ephemeral local SSDs; default: all the disks bundled with the machine type."""
    image_streaming: bool = True
    secondary_boot_disk: str | None = None
    """'global/images/NAME' or 'projects/P/global/images/NAME': a disk image preloaded with the
    model server image (CONTAINER_IMAGE_CACHE); needs image_streaming."""
    gvnic: bool = True
    disk_size_gb: int = Field(200, ge=50)
    disk_type: Literal["pd-ssd", "pd-balanced", "hyperdisk-balanced"] = "pd-ssd"
    compact_placement: bool = False

    @field_validator("machine_type")
    @classmethod
    def _h100(cls, v: str) -> str:
        try:
            gpu_machine(v)
        except ValueError as err:
            msg = str(err)
            raise ValueError(f"{v!r} {msg}" if msg.startswith("is not") else msg) from None
        return v

    @field_validator("max_run_duration")
    @classmethod
    def _duration(cls, v):
        if v is None:
            return v
        m = re.match(r"^(\d+)s$", v)
        if not m:
            raise ValueError(f"{v!r} is not a duration in seconds like '604800s'")
        if not 600 <= int(m[1]) <= 604800:
            raise ValueError(f"{v!r} is out of range; flex-start VMs run between 600s and 604800s (7 days)")
        return v

    @model_validator(mode="after")
    def _provisioning(self):
        if self.provisioning == "reservation" and not self.reservation:
            raise ValueError("provisioning 'reservation' needs reservation: <reservation name>")
        if self.reservation and self.provisioning != "reservation":
            raise ValueError(
                f"reservation is set but provisioning is {self.provisioning!r}; a specific reservation "
                "cannot be combined with spot or flex-start (use provisioning: reservation)"
            )
        if self.max_run_duration and self.provisioning not in ("flex-start", "spot", "on-demand"):
            raise ValueError("max_run_duration applies to flex-start, spot or on-demand VMs, not reservations")
        if self.secondary_boot_disk and not self.image_streaming:
            raise ValueError("secondary_boot_disk needs image_streaming: true (GKE requires gcfs for it)")
        if self.secondary_boot_disk and not _DISK_IMAGE.match(self.secondary_boot_disk):
            raise ValueError(
                f"secondary_boot_disk {self.secondary_boot_disk!r} is not a disk image; "
                "use 'global/images/NAME' or 'projects/PROJECT/global/images/NAME'"
            )
        bundled = self.machine.local_ssds
        if self.local_ssd_count not in (None, 0, bundled):
            raise ValueError(
                f"local_ssd_count {self.local_ssd_count} does not match {self.machine_type}, which comes with "
                f"{bundled} local SSDs; use {bundled} (all of them as ephemeral storage) or 0"
            )
        return self

    @property
    def machine(self) -> GpuMachine:
        return gpu_machine(self.machine_type)


_DISK_IMAGE = re.compile(r"^(projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/)?global/images/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_IMAGE_REF = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$")


class PickerImageConfig(Strict):
    """Where the endpoint picker image comes from."""

    image: str | None = None
    """A prebuilt image reference (ideally by digest): no registry, no build."""
    repository_id: Name = "inference-gateway"
    """Artifact Registry Docker repository created for the build."""
    push: bool = True
    """false builds without pushing (CI checks); the cluster then cannot pull it."""

    @field_validator("image")
    @classmethod
    def _ref(cls, v):
        if v is not None and not _IMAGE_REF.match(v):
            raise ValueError(
                f"{v!r} is not an image reference; use REGISTRY/PATH/NAME:TAG or REGISTRY/PATH/NAME@sha256:DIGEST"
            )
        return v


RaiFilter = Literal["SEXUALLY_EXPLICIT", "HATE_SPEECH", "HARASSMENT", "DANGEROUS"]
Confidence = Literal["LOW_AND_ABOVE", "MEDIUM_AND_ABOVE", "HIGH"]


class SdpAdvancedConfig(Strict):
    inspect_template: str
    deidentify_template: str | None = None


class ModelArmorTemplateConfig(Strict):
    id: Name
    rai_filters: dict[RaiFilter, Confidence] = {
        "SEXUALLY_EXPLICIT": "MEDIUM_AND_ABOVE",
        "HATE_SPEECH": "MEDIUM_AND_ABOVE",
        "HARASSMENT": "MEDIUM_AND_ABOVE",
        "DANGEROUS": "MEDIUM_AND_ABOVE",
    }
    pi_and_jailbreak: Confidence | None = "MEDIUM_AND_ABOVE"
    """Prompt-injection and jailbreak detection; null turns it off."""
    malicious_uri: bool = True
    sdp: Literal["basic", "advanced", "off"] = "basic"
    sdp_advanced: SdpAdvancedConfig | None = None
    enforcement: Literal["INSPECT_ONLY", "INSPECT_AND_BLOCK"] = "INSPECT_AND_BLOCK"
    log_operations: bool = True

    @model_validator(mode="after")
    def _sdp(self):
        if self.sdp_advanced is not None:
            for field, kind in (("inspect_template", "inspectTemplates"), ("deidentify_template", "deidentifyTemplates")):
                value = getattr(self.sdp_advanced, field)
                if value is not None and not re.match(rf"^(projects|organizations)/[^/]+/locations/[^/]+/{kind}/[^/]+$", value):
                    raise ValueError(
                        f"sdp_advanced.{field} {value!r} is not a DLP template name; use "
                        f"projects/PROJECT/locations/LOCATION/{kind}/NAME"
                    )
        if self.sdp == "advanced" and self.sdp_advanced is None:
            raise ValueError("sdp 'advanced' needs sdp_advanced.inspect_template (a DLP template name)")
        if self.sdp != "advanced" and self.sdp_advanced is not None:
            raise ValueError("sdp_advanced is set but sdp is not 'advanced'")
        return self


class ModelArmorGuardConfig(Strict):
    """Which templates screen prompts and responses for a model ('default' = any other model)."""

    model: str
    prompt_template: Name
    response_template: Name


class ModelArmorConfig(Strict):
    templates: list[ModelArmorTemplateConfig] = []
    guards: list[ModelArmorGuardConfig] = []
    gateways: list[Name] | None = None
    """Gateways the traffic extension attaches to; default: every external gateway."""
    timeout_ms: int = Field(1000, ge=10, le=10000)
    fail_open: bool = False
    floor_setting: bool = False
    """Also set a project floor setting from the first template's filters."""

    @model_validator(mode="after")
    def _templates(self):
        ids = [t.id for t in self.templates]
        for i, t in enumerate(ids):
            if ids.index(t) != i:
                raise ValueError(f"templates[{i}].id {t!r} is used twice; template ids are unique per location")
        if self.floor_setting and not self.templates:
            raise ValueError("floor_setting needs at least one template (its filters become the floor)")
        return self
