"""The tiny model's recipe: everything that decides its bytes, as plain data (stdlib only).

A two-layer Llama with random weights, a byte-level BPE tokenizer trained on a corpus generated
here from a fixed word list and seed, a chat template, and two LoRA adapters with non-zero
weights (so each adapter's output differs from the base model's). No download is involved.

`make_tiny_model.py` turns this recipe into files; `locate.py` finds them by the content hash of
this file, `make_tiny_model.py` and the environment's lock, so any change here makes a new model
next to the old one instead of silently reusing it.
"""

from __future__ import annotations

import random

SEED = 20261202

TOKENIZER = {
    "vocab_size": 8192,
    "min_frequency": 2,
    "bos": "<s>",
    "eos": "</s>",
    "pad": "<pad>",
    "extra_special": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
}

# hidden 256, 2 layers, 4 heads of 64: about 5.5 M parameters in bf16 (vocab ~8 k on both ends).
MODEL = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
}

# rank 8 on the attention projections; B is drawn from N(0, b_std) (peft starts B at zero, which
# would make an adapter a no-op) with a per-adapter seed.
LORA = {
    "r": 8,
    "lora_alpha": 16,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "b_std": 0.05,
}
ADAPTERS = {"tiny-lora-a": 1, "tiny-lora-b": 2}
"""Adapter directory name -> seed offset."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_WORDS = """
the a an of to in on for with by from at as is are was were be been being have has had do does
did will would can could should may might must shall not no yes and or but if then else when
while because so than that this these those it its they them their we our you your he she his
her i me my model server request token cache prefix queue gateway picker endpoint pool replica
adapter weight batch latency throughput memory block kernel tensor layer attention head vector
score route traffic load balance health probe metric counter gauge histogram label series scrape
interval timeout retry stream chunk body header status error warning reason policy limit user key
value config stack cluster node zone region network subnet proxy envoy filter listener cluster
food review recipe kitchen bread cheese apple garden river mountain city street window door table
chair paper pencil book story chapter letter word sentence language question answer reason idea
plan project team meeting report summary detail number count time day week month year morning
evening night light dark warm cold fast slow small large short long early late new old first last
next previous open close start stop read write send receive build test deploy measure compare
""".split()


def corpus(n_sentences: int = 6000) -> list[str]:
    """Deterministic pseudo-English lines for training the tokenizer (same text every run)."""
    rng = random.Random(SEED)
    lines = []
    for _ in range(n_sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 18))]
        words[0] = words[0].capitalize()
        punct = rng.choice([".", ".", ".", "?", "!"])
        number = f" {rng.randint(0, 9999)}" if rng.random() < 0.2 else ""
        lines.append(" ".join(words) + number + punct)
    return lines
