"""The LoRA-affinity scorer's choice on real vLLM, asserted from the servers' real /metrics.

Requests kept in flight directly on the servers set up: ``roomy`` runs tiny-lora-a (one of its two
adapter slots free), ``small`` runs tiny-lora-a and tiny-lora-b (no slot free). Real vLLM then
lists each in-flight adapter in both the running and the waiting list. Probes through Envoy and a
picker scoring LoRA affinity only must go where the real pages say:

* base model: roomy (0.8, a free slot) over small (0.0, full). Counting the lists' lengths, as
  before, made roomy look full too (a + a = 2 of 2) and left it to chance;
* tiny-lora-b: small (1.0, loaded) over roomy (0.8);
* tiny-lora-a: loaded on both (1.0 each): either.
"""

from __future__ import annotations

import time

from ..load import Streams, lora_lists, page, wait_idle, wait_pages

A, B = "tiny-lora-a", "tiny-lora-b"
HOLD_PROMPT = "hold this adapter slot while the probes run"
PROBE_ATTEMPTS = 20
"""Probes per model; the three that count are those with the held state read before and after."""


def expected_score(model: str, lists) -> float:
    """The ladder over real vLLM's lists (an independent statement of the rule being tested)."""
    if lists is None:
        return 0.8  # LoRA on, no sample yet: nothing in flight
    running, waiting, max_lora = lists
    if model in running:
        return 1.0
    if len(running | waiting) < max_lora:
        return 0.8
    return 0.6 if model in waiting else 0.0


def test_lora_choice_with_one_slot_free_and_none_free(servers, gateway):
    gw = gateway(scorers=[{"type": "lora-affinity-scorer", "weight": 1}])
    roomy, small = servers.roomy, servers.small
    want = {roomy.key: (frozenset({A}), frozenset({A}), 2), small.key: (frozenset({A, B}), frozenset({A, B}), 2)}
    wait_idle(servers.all)
    # Three streams per adapter whose lengths have no small common ratio, so they restart at
    # different moments and one is always in flight (250/361/467 tokens: 2+3+4 blocks per adapter,
    # 18 of small's 24 with both adapters, so nothing is preempted).
    def hold(url: str, *adapters: str) -> Streams:
        s = Streams(url)
        for adapter in adapters:
            for length in (250, 361, 467):
                s.keep(adapter, HOLD_PROMPT, length)
        return s

    holders = [hold(roomy.url, A), hold(small.url, A, B)]
    try:
        t_state = time.monotonic()
        wait_pages(servers.all, "roomy running tiny-lora-a, small running both adapters",
                   lambda ps: [lora_lists(p) for p in ps] == [want[roomy.key], want[small.key]])
        gw.wait_scraped_since(t_state, 0.05)
        # The picker reads the same lists off the real pages (its own view, picker_endpoint_lora_adapter).
        gw.wait_view("the held adapters", lambda v: {k: e.lora for k, e in v.items()} == want)
        for model, winner in (("tiny", roomy.key), (B, small.key), (A, None)):
            seen = 0
            for _ in range(PROBE_ATTEMPTS):
                r, held = gw.probe(lambda: {s.key: lora_lists(page(s)) for s in servers.all},
                                   {"model": model, "prompt": f"probe for {model}", "max_tokens": 1})
                if held != want:
                    continue      # a holder was restarting around this probe: the decision may have seen another state
                scores = {k: expected_score(model, lists) for k, lists in held.items()}
                best = {k for k, v in scores.items() if v == max(scores.values())}
                served = gw.served(r)
                assert served in best, (model, scores, served)
                if winner:
                    assert best == {winner}, (model, scores)
                seen += 1
                if seen == 3:
                    break
            assert seen == 3, f"{model}: only {seen} of {PROBE_ATTEMPTS} probes saw the held state before and after"
    finally:
        for h in holders:
            h.stop()
    assert [h.errors for h in holders] == [[], []]
    assert [expected_score("tiny", want[k]) for k in (roomy.key, small.key)] == [0.8, 0.0]
