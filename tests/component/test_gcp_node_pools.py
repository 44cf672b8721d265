"""GpuNodePool under the mock engine: every H100 pool of every stack, as GKE will see it."""

from __future__ import annotations

import pytest

from tests.conftest import render_with

POOL = "gcp:container/nodePool:NodePool"

# stack -> pool name -> what differs between pools
EXPECTED = {
    "dev": {
        "gpu-h100x1-a3h1-spot": {
            "machine": "a3-highgpu-1g", "gpus": 1, "ssds": 2, "spot": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 3},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": True,
        },
    },
    "prod": {
        "gpu-h100x8-a3h8-res": {
            "machine": "a3-highgpu-8g", "gpus": 8, "ssds": 16,
            "autoscaling": {"locationPolicy": "ANY", "minNodeCount": 1, "maxNodeCount": 2},
            "affinity": {
                "consumeReservationType": "SPECIFIC_RESERVATION",
                "key": "compute.googleapis.com/reservation-name",
                "values": ["h100-prod-reservation"],
            },
            "auto_repair": True, "initial": 1,
        },
        "gpu-h100x2-a3h2-dws": {
            "machine": "a3-highgpu-2g", "gpus": 2, "ssds": 4, "flex_start": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 4},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": False,
        },
    },
    "local": {
        "gpu-h100x1-a3h1-spot": {
            "machine": "a3-highgpu-1g", "gpus": 1, "ssds": 2, "spot": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 4},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": True,
        },
    },
    "local-vllm": {
        "gpu-h100x1-a3h1-spot": {
            "machine": "a3-highgpu-1g", "gpus": 1, "ssds": 2, "spot": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 2},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": True,
        },
    },
    "runtimes": {
        "gpu-h100x1-a3h1-spot": {
            "machine": "a3-highgpu-1g", "gpus": 1, "ssds": 2, "spot": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 6},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": True,
        },
    },
    "external": {
        "gpu-h100x1-a3h1-spot": {
            "machine": "a3-highgpu-1g", "gpus": 1, "ssds": 2, "spot": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 2},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": True,
        },
    },
    "scale-to-zero": {
        "gpu-h100x1-a3h1-spot": {
            "machine": "a3-highgpu-1g", "gpus": 1, "ssds": 2, "spot": True,
            "autoscaling": {"locationPolicy": "ANY", "totalMinNodeCount": 0, "totalMaxNodeCount": 4},
            "affinity": {"consumeReservationType": "NO_RESERVATION"}, "auto_repair": True,
        },
    },
}
ZONES = {"dev": ["us-central1-a", "us-central1-c"], "prod": ["us-central1-a", "us-central1-c"], "local": ["us-central1-a"], "local-vllm": ["us-central1-a"], "runtimes": ["us-central1-a"], "external": ["us-central1-a"], "scale-to-zero": ["us-central1-a"]}


def gpu_pools(synth):
    return {p.inputs["name"]: p for p in synth.of_type(POOL) if p.inputs["name"] != "system"}


def test_pool_names_and_exports(created_cluster_stack):
    assert sorted(gpu_pools(created_cluster_stack)) == sorted(EXPECTED[created_cluster_stack.stack])
    assert sorted(created_cluster_stack.outputs["nodePools"]) == sorted(EXPECTED[created_cluster_stack.stack])


@pytest.mark.parametrize("stack, pool_name", [(s, p) for s, pools in EXPECTED.items() for p in pools])
def test_h100_pool(stack, pool_name):
    from tests.conftest import rendered

    synth = rendered(stack)
    want = EXPECTED[stack][pool_name]
    pool = gpu_pools(synth)[pool_name]
    i, node = pool.inputs, pool.inputs["nodeConfig"]
    cluster = synth.one("gcp:container/cluster:Cluster")
    project = cluster.inputs["project"]
    u = pool.urn

    assert "inference-gateway:gcp:GpuNodePool" in pool.parent, u
    assert i["cluster"] == f"projects/{project}/locations/us-central1/clusters/{cluster.inputs['name']}", u
    assert i["location"] == "us-central1", u
    assert i["nodeLocations"] == ZONES[stack], u
    assert i["initialNodeCount"] == want.get("initial", 0), u
    assert i["autoscaling"] == want["autoscaling"], u
    assert i["management"] == {"autoRepair": want["auto_repair"], "autoUpgrade": True}, u
    assert "queuedProvisioning" not in i, u

    assert node["machineType"] == want["machine"], u
    assert node["guestAccelerators"] == [
        {"type": "nvidia-h100-80gb", "count": want["gpus"], "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"}}
    ], u
    assert node.get("spot", False) is want.get("spot", False), u
    assert node.get("flexStart", False) is want.get("flex_start", False), u
    if want.get("flex_start"):
        assert node["maxRunDuration"] == "604800s", u
    assert node["reservationAffinity"] == want["affinity"], u
    assert node["ephemeralStorageLocalSsdConfig"] == {"localSsdCount": want["ssds"]}, u
    assert node["imageType"] == "COS_CONTAINERD" and node["gcfsConfig"] == {"enabled": True}, u
    assert node["gvnic"] == {"enabled": True}, u
    assert node["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}], u
    assert node["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb", "inference-gateway.dev/pool": pool_name}, u
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}, u
    assert node["serviceAccount"].endswith(f"-nodes@{project}.iam.gserviceaccount.com"), u
    assert node["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"], u


def test_mega_pool_with_image_cache_and_compact_placement():
    synth = render_with(
        "dev",
        node_pools=[
            {
                "machine_type": "a3-megagpu-8g",
                "provisioning": "on-demand",
                "gpu_driver_version": "DEFAULT",
                "secondary_boot_disk": "global/images/vllm-image-cache",
                "compact_placement": True,
                "node_locations": ["us-central1-a"],
                "autoscaling": {"min_nodes": 0, "max_nodes": 2, "location_policy": "BALANCED"},
            }
        ],
    )
    pool = gpu_pools(synth)["gpu-h100x8-a3m8"]
    node = pool.inputs["nodeConfig"]
    assert node["guestAccelerators"][0] == {"type": "nvidia-h100-mega-80gb", "count": 8, "gpuDriverInstallationConfig": {"gpuDriverVersion": "DEFAULT"}}, pool.urn
    assert node["secondaryBootDisks"] == [{"diskImage": "global/images/vllm-image-cache", "mode": "CONTAINER_IMAGE_CACHE"}], pool.urn
    assert pool.inputs["placementPolicy"] == {"type": "COMPACT"}, pool.urn
    assert pool.inputs["nodeLocations"] == ["us-central1-a"], pool.urn
    assert pool.inputs["autoscaling"] == {"locationPolicy": "BALANCED", "minNodeCount": 0, "maxNodeCount": 2}, pool.urn
    assert pool.inputs["upgradeSettings"] == {"strategy": "SURGE", "maxSurge": 0, "maxUnavailable": 1}, pool.urn
    assert "reservationAffinity" not in node and "spot" not in node, pool.urn
