"""ModelRouting: per served model of a pool, an InferenceObjective (priority from criticality)
and, when the model has weighted targets, an InferenceModelRewrite (llm-d.ai/v1alpha2).

See builders/model_routing.py for the criticality -> priority mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from .builders import model_routing as b
from .config.serving import ServedModelConfig


@dataclass(frozen=True)
class ModelRoutingArgs:
    models: list[ServedModelConfig]
    namespace: str
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    """The llm-d.ai CRDs (and the pool) must exist first."""


class ModelRouting(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelRoutingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("inference-gateway:serving:ModelRouting", name, None, opts)
        after = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.objectives: dict[str, str] = {}
        for model in args.models:
            obj = b.inference_objective(model, args.namespace)
            name_ = obj["metadata"]["name"]
            k8s.apiextensions.CustomResource(
                f"{model.pool}-{name_}-objective",
                api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], spec=obj["spec"], opts=after,
            )
            self.objectives[model.name] = name_
            rw = b.inference_model_rewrite(model, args.namespace)
            if rw is not None:
                k8s.apiextensions.CustomResource(
                    f"{model.pool}-{name_}-rewrite",
                    api_version=rw["apiVersion"], kind=rw["kind"], metadata=rw["metadata"], spec=rw["spec"], opts=after,
                )
        self.register_outputs({"objectives": self.objectives})
