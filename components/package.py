"""The package's public component for Pulumi programs in any language: `inference-gateway:index:Platform`.

`provider/` hosts it as a Pulumi component provider (PulumiPlugin.yaml + `component_provider_host`),
so a TypeScript, Go, Python or YAML program can `pulumi package add` this repository and write

    new igw.Platform("ml", { config: { project: "my-project", cluster: { existing: {} }, ... },
                             kubeconfig: cfg.requireSecret("kubeconfig") });

`config` is a stack config as a plain object: exactly the keys and values of the
`inference-gateway:*` entries of a stack file, validated by the same rules (components/config)
before anything is created. The secrets are arguments, each made a Pulumi secret. `outputs` holds
what the Pulumi program exports for the same config (gateway URLs, model endpoints, pools...).

The analyzer reads the annotations at run time, so this module does not postpone them
(no `from __future__ import annotations`). The picker image must be given (`picker_image.image`): building it needs this repository's
`picker/` folder as the build context, which a program elsewhere does not have.
"""


from typing import Any, NotRequired, Optional, TypedDict

import pulumi

from .config.external import PROVIDER_KEYS
from .platform import InferencePlatform
from .secrets import StackSecrets
from .stack_config import parse_stack_config

PACKAGE = "inference-gateway"
PLATFORM_TYPE = f"{PACKAGE}:index:Platform"


class PlatformArgs(TypedDict):
    config: dict[str, Any]
    """The stack config: the keys of a stack file's `inference-gateway:*` entries (project, cluster,
    node_pools, model_servers, pools, models, gateways...) with the same values. Plain values
    only: it is validated before any resource is created."""
    hf_token: NotRequired[pulumi.Input[str]]
    """Hugging Face token for model servers with hf_token: true (stored as a Kubernetes Secret)."""
    api_keys: NotRequired[pulumi.Input[str]]
    """API keys for pools with picker.api_keys (the apiKeys secret of a stack)."""
    kubeconfig: NotRequired[pulumi.Input[str]]
    """Kubeconfig contents for cluster.existing when it gives no path."""
    provider_keys: NotRequired[pulumi.Input[dict[str, dict[str, str]]]]
    """External models' provider keys by scope and key (what `{{secrets/<scope>/<key>}}` in
    models[].external.api_key_secret names)."""


class Platform(pulumi.ComponentResource):
    """The whole inference platform for one stack config (InferencePlatform)."""

    outputs: pulumi.Output[dict[str, Any]]
    """The values the Pulumi program exports for this config (gatewayUrls, modelEndpoints, ...)."""

    def __init__(self, name: str, args: PlatformArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(PLATFORM_TYPE, name, {}, opts)
        config = parse_stack_config(args["config"])
        if config.picker_image.image is None:
            raise ValueError(
                "config.picker_image.image: is required when the platform is used as a component; the picker image "
                "is built from this repository's picker/ folder, so push it (picker/Dockerfile) and give its reference"
            )
        secrets = StackSecrets.given({
            "hfToken": args.get("hf_token"), "apiKeys": args.get("api_keys"), "kubeconfig": args.get("kubeconfig"),
            PROVIDER_KEYS: args.get("provider_keys"),
        })
        self.platform = InferencePlatform(config.name_prefix, config, pulumi.ResourceOptions(parent=self), secrets=secrets)
        self.outputs = pulumi.Output.from_input(self.platform.exports())
        self.register_outputs({"outputs": self.outputs})
