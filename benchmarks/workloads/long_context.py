"""Long context: questions about long documents (agentic / document-QA traffic).

`num_docs` documents of `doc_tokens_min`..`doc_tokens_max` tokens (uniform), requested with
Zipf(`doc_zipf_s`) popularity; each request is one document followed by a `question_len`-token
question, with a ShareGPT-like output length (`output_median`, `output_sigma`, clipped to
`output_min`..`output_max`). A document is a shared prefix of 50-100k tokens: where it is cached
decides whether a request costs one step or several seconds of prefill.
"""

from __future__ import annotations

import random
from typing import Any

from .common import PlannedRequest, TextSource, arrivals, completion_body, lognormal_int, zipf_weights


def long_context(rng: random.Random, text: TextSource, model: str, rate: float, duration: float,
                 p: dict[str, Any]) -> list[PlannedRequest]:
    n_docs = int(p["num_docs"])
    lo, hi = int(p["doc_tokens_min"]), int(p["doc_tokens_max"])
    doc_len = [rng.randint(lo, hi) for _ in range(n_docs)]
    docs = [text.text(doc_len[d], f"document {d}") for d in range(n_docs)]
    weights = zipf_weights(n_docs, float(p.get("doc_zipf_s", 1.0)))
    q_len = int(p.get("question_len", 200))
    out = []
    for n, t in enumerate(arrivals(rng, rate, duration)):
        d = rng.choices(range(n_docs), weights)[0]
        o = lognormal_int(rng, p.get("output_median", 200), p.get("output_sigma", 0.6),
                          p.get("output_min", 16), p.get("output_max", 1024))
        prompt = docs[d] + text.text(q_len, f"question {n}")
        out.append(PlannedRequest(t, completion_body(model, prompt, o), doc_len[d] + q_len, o, model,
                                  group=d, prefix_tokens=doc_len[d], meta={"document": d}))
    return out
