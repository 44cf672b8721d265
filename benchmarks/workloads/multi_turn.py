"""Multi-turn chat: conversations whose every turn resends the whole history.

Conversations start as a Poisson process at `rate` per second during `duration_s`; each has
`turns_min`..`turns_max` turns (uniform). Every conversation opens with the same
`system_prompt_len`-token system prompt (one chat application), then user messages of
~`user_median` tokens (log-normal) and answers of ~`output_median` tokens; the next turn is sent
`think_time_s` (exponential mean) after the previous answer ends, with the answer's text (read
back from the server) in the history. So the prompt grows turn by turn and its prefix is cached
wherever the conversation was served last: the case where prefix affinity pays most.

Follow-up turns depend on answers, so this workload runs in virtual time (the answer's text
comes from the simulator's text source, exactly what its server would have streamed).
"""

from __future__ import annotations

import random
from typing import Any

from .common import CHAT, PlannedRequest, TextSource, arrivals, chat_body, lognormal_int


def multi_turn(rng: random.Random, text: TextSource, model: str, rate: float, duration: float,
               p: dict[str, Any]) -> list[PlannedRequest]:
    system = text.text(int(p.get("system_prompt_len", 500)), "system")
    tmin, tmax = int(p["turns_min"]), int(p["turns_max"])
    think = float(p.get("think_time_s", 5.0))

    def turn(conv: int, crng: random.Random, k: int, turns: int, history: list[dict[str, str]],
             t: float) -> PlannedRequest:
        # Every draw of a conversation comes from its own generator: later turns are drawn when
        # answers arrive, in an order that depends on the strategy, and must not shift the others.
        u = lognormal_int(crng, p.get("user_median", 120), p.get("user_sigma", 0.8), 8, 4096)
        msgs = history + [{"role": "user", "content": text.text(u, f"c{conv} t{k}", crng)}]
        o = lognormal_int(crng, p.get("output_median", 180), p.get("output_sigma", 0.6), 8, 1024)
        prompt_tokens = sum(len(m["content"]) for m in msgs) // 4
        pr = PlannedRequest(t, chat_body(model, msgs, o), prompt_tokens, o, model, group=conv,
                            prefix_tokens=prompt_tokens, path=CHAT,
                            meta={"conversation": conv, "turn": k, "group_requests": turns})
        if k + 1 < turns:
            def followup(answer: str) -> PlannedRequest:
                return turn(conv, crng, k + 1, turns, msgs + [{"role": "assistant", "content": answer}],
                            crng.expovariate(1.0 / think))
            pr.followup = followup
        return pr

    out = []
    for conv, t in enumerate(arrivals(rng, rate, duration)):
        crng = random.Random(rng.getrandbits(64))
        turns = crng.randint(tmin, tmax)
        out.append(turn(conv, crng, 0, turns, [{"role": "system", "content": system}], t))
    return out
