"""PickerImage under the mock engine: repository + build/push of picker/, or a prebuilt ref."""

from __future__ import annotations

import re
from tests.conftest import render_with

REPO = "gcp:artifactregistry/repository:Repository"
IMAGE = "docker-build:index:Image"


def test_built_stacks_create_a_docker_repository_and_push_picker(dev, prod):
    for synth, project in ((dev, "igw-dev-project"), (prod, "igw-prod-project")):
        repo = synth.one(REPO)
        assert repo.inputs["format"] == "DOCKER", repo.urn
        assert repo.inputs["repositoryId"] == "inference-gateway", repo.urn
        assert repo.inputs["location"] == "us-central1", repo.urn
        image = synth.one(IMAGE)
        i = image.inputs
        assert "inference-gateway:gcp:PickerImage" in image.parent and "inference-gateway:gcp:PickerImage" in repo.parent, image.urn
        assert i["push"] is True, image.urn
        assert i["context"] == {"location": "picker"}, image.urn
        assert i["dockerfile"] == {"location": "picker/Dockerfile"}, image.urn
        assert i["platforms"] == ["linux/amd64"], image.urn
        # The tag is the content hash of picker/ (12 hex digits; tests/unit covers how it is computed).
        (tag,) = i["tags"]
        assert re.fullmatch(rf"us-central1-docker\.pkg\.dev/{project}/inference-gateway/endpoint-picker:[0-9a-f]{{12}}", tag), image.urn
        assert i["registries"] == [{"address": "us-central1-docker.pkg.dev", "username": "oauth2accesstoken", "password": "[secret]"}], image.urn
        assert repo.urn in image.dependencies, image.urn


def test_picker_image_is_exported_by_digest(dev):
    ref = dev.outputs["pickerImage"]
    assert re.fullmatch(r"us-central1-docker\.pkg\.dev/igw-dev-project/inference-gateway/endpoint-picker@sha256:[0-9a-f]{64}", ref), ref


def test_prebuilt_image_means_no_repository_and_no_build(local):
    assert local.of_type(REPO) == [] and local.of_type(IMAGE) == []
    assert local.outputs["pickerImage"] == "ghcr.io/inference-gateway/endpoint-picker:local"


def test_custom_repository_and_build_without_push():
    synth = render_with("dev", picker_image={"repository_id": "platform-images", "push": False})
    assert synth.one(REPO).inputs["repositoryId"] == "platform-images"
    image = synth.one(IMAGE)
    assert image.inputs["push"] is False, image.urn
    assert image.inputs["tags"][0].startswith("us-central1-docker.pkg.dev/igw-dev-project/platform-images/endpoint-picker:"), image.urn
    assert synth.outputs["pickerImage"] == image.inputs["tags"][0], "an unpushed build has only its tag"
