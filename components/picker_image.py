"""PickerImage: the endpoint picker's container image, built from picker/ and pushed to Artifact
Registry, or a prebuilt reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from .builders import picker_image as b
from .config import StackConfig

PICKER_DIR = Path(__file__).resolve().parent.parent / "picker"
"""The build context: the picker's own tree with its Dockerfile."""
CONTEXT = "picker"
"""The context as docker-build sees it: relative to the project directory (Pulumi's working
directory), so state does not record a machine-specific absolute path."""


@dataclass(frozen=True)
class PickerImageArgs:
    config: StackConfig
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Usually the artifactregistry API."""
    context_dir: Path = PICKER_DIR
    """Where the tree that is hashed for the tag lives (tests point it elsewhere)."""


class PickerImage(pulumi.ComponentResource):
    """An Artifact Registry DOCKER repository (`picker_image.repository_id`, in the stack's region)
    and a build + push of `picker/` for linux/amd64, tagged with the content hash of the picker
    tree (same sources -> same tag, a change -> a new tag and a rollout). `ref` is the pushed
    image BY DIGEST (`.../endpoint-picker@sha256:...`), so pods never run a moved tag.

    With `picker_image.image` set nothing is created and `ref` is that reference.
    """

    ref: pulumi.Output[str]
    repository: gcp.artifactregistry.Repository | None
    image: docker_build.Image | None

    def __init__(self, name: str, args: PickerImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:gcp:PickerImage", name, None, opts)
        cfg = args.config
        pic = cfg.picker_image
        self.repository = None
        self.image = None
        if pic.image is not None:
            self.ref = pulumi.Output.from_input(pic.image)
            self.register_outputs({"ref": self.ref})
            return

        self.repository = gcp.artifactregistry.Repository(
            f"{name}-repo",
            project=cfg.project,
            location=cfg.region,
            repository_id=pic.repository_id,
            format="DOCKER",
            description="inference-gateway images (endpoint picker)",
            labels=dict(cfg.labels) or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        content_hash = b.context_hash(args.context_dir)
        tag = self.repository.registry_uri.apply(lambda uri: b.image_tag(uri, content_hash))
        token = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOptions(parent=self)).access_token
        self.image = docker_build.Image(
            f"{name}",
            context={"location": CONTEXT},
            dockerfile={"location": f"{CONTEXT}/Dockerfile"},
            platforms=[docker_build.Platform.LINUX_AMD64],
            tags=[tag],
            push=pic.push,
            registries=[
                {
                    "address": b.registry_host(cfg.region),
                    "username": "oauth2accesstoken",
                    "password": pulumi.Output.secret(token),
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.repository]),
        )
        if pic.push:
            self.ref = pulumi.Output.all(self.repository.registry_uri, self.image.digest).apply(
                lambda v: f"{v[0]}/{b.IMAGE_NAME}@{v[1]}"
            )
        else:
            self.ref = tag  # not pushed: only a local tag (the cluster cannot pull it)
        self.register_outputs({"ref": self.ref})
