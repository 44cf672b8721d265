"""Limits only a render can tell, checked with the stack config before any resource exists.

An HTTPRoute holds at most 16 rules and 128 matches (served-model rules, one rule per client API
path on invoke routes), and a
GCPTrafficExtension metadata value at most 1023 characters. Counting them means building them,
so these checks live with the builders; `components.stack_config` runs them after the config's
own rules pass and reports their problems the same way.
"""

from __future__ import annotations

from ..catalog.names import template_name
from ..config import StackConfig
from ..config.exposure import route_api_paths
from ..config.runtime_rules import invocation_paths
from ..config.routing import guarded_gateways
from .model_armor_extension import METADATA_VALUE_MAX, model_armor_settings
from .routes import route_limit_problem


def render_limit_problems(cfg: StackConfig) -> list[str]:
    problems: list[str] = []
    for i, g in enumerate(cfg.gateways):
        for j, r in enumerate(g.routes):
            problem = route_limit_problem(r, cfg.models, [p.route for p in route_api_paths(cfg, r)], invocation_paths(cfg, r))
            if problem:
                problems.append(
                    f"gateways[{i}].routes[{j}]: {problem} (one rule per served model on path_prefix routes, "
                    "one per client API path on invoke routes). Set served_model_routes: false or split the route"
                )
    ma = cfg.model_armor
    if ma is not None and ma.guards and guarded_gateways(cfg.gateways, ma):
        ids = {t.id for t in ma.templates}
        if all(g.prompt_template in ids and g.response_template in ids for g in ma.guards):
            names = {t: template_name(cfg.project, cfg.region, t) for t in ids}
            size = len(model_armor_settings(ma, names))
            if size > METADATA_VALUE_MAX:
                problems.append(
                    f"model_armor.guards: the model_armor_settings value would be {size} characters; the "
                    f"GCPTrafficExtension allows {METADATA_VALUE_MAX}. Use fewer guards (model: default covers every other model)"
                )
    return problems
