"""Per-model routing objects (pure): InferenceObjective and InferenceModelRewrite (llm-d.ai/v1alpha2).

Seed 001's ``InferenceModel`` (v1alpha2, removed in GIE v1.0) carried a client model name, a
criticality and weighted target models. Its successors split that in two:

- ``InferenceObjective``: the request priority. We map the seed's criticality to a priority
  (``CRITICALITY_PRIORITY``) and record the client model name in an annotation, which our picker
  reads to pick the objective from the request's ``model``.
- ``InferenceModelRewrite``: the weighted traffic split (seed 002's 90/10), only when a model
  has targets.

Criticality -> priority (higher is more important; negative is sheddable: the picker answers 429
for it while the pool is saturated, and never sheds priority >= 0):

    Critical  -> 100
    Standard  ->   0   (unset priority also means 0: Standard is the neutral default)
    Sheddable -> -10
"""

from __future__ import annotations

import json
from typing import Any

from ..catalog.names import dns_name
from .inference_pool import POOL_GROUP

LLMD_API_VERSION = "llm-d.ai/v1alpha2"
MODEL_ANNOTATION = "inference-gateway.dev/model"
TAGS_ANNOTATION = "inference-gateway.dev/tags"
CRITICALITY_PRIORITY = {"Critical": 100, "Standard": 0, "Sheddable": -10}

def pool_ref(pool_name: str) -> dict[str, str]:
    return {"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name}


def inference_objective(model, namespace: str) -> dict[str, Any]:
    annotations = {MODEL_ANNOTATION: model.name}
    if getattr(model, "tags", None):
        # seed 004's endpoint tags, kept on the endpoint's own object (igw status reads them)
        annotations[TAGS_ANNOTATION] = json.dumps(dict(model.tags), sort_keys=True)
    return {
        "apiVersion": LLMD_API_VERSION,
        "kind": "InferenceObjective",
        "metadata": {
            "name": dns_name(model.name),
            "namespace": namespace,
            "annotations": annotations,
        },
        "spec": {"priority": CRITICALITY_PRIORITY[model.criticality], "poolRef": pool_ref(model.pool)},
    }


def inference_model_rewrite(model, namespace: str) -> dict[str, Any] | None:
    """None when the model has no targets (the name itself is served)."""
    targets = [{"modelRewrite": t.model, "weight": t.weight} for t in model.targets if t.weight > 0]
    if not targets:
        return None
    return {
        "apiVersion": LLMD_API_VERSION,
        "kind": "InferenceModelRewrite",
        "metadata": {
            "name": dns_name(model.name),
            "namespace": namespace,
            "annotations": {MODEL_ANNOTATION: model.name},
        },
        "spec": {
            "poolRef": pool_ref(model.pool),
            "rules": [{"matches": [{"model": {"type": "Exact", "value": model.name}}], "targets": targets}],
        },
    }
