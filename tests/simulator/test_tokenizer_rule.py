"""The approximate tokenizer rule: 4 UTF-8 bytes per token, used everywhere consistently."""

from __future__ import annotations

import httpx

from vllm_simulator import tokenizer as tok

from .conftest import MODEL


def test_count_is_ceil_of_utf8_bytes_over_four():
    assert tok.count_tokens(b"") == 0
    assert tok.count_tokens(b"abcd") == 1
    assert tok.count_tokens(b"abcde") == 2
    assert tok.count_tokens("ü".encode()) == 1
    assert len(tok.encode("x" * 4001)) == 1001


def test_encode_decode_roundtrip_including_multibyte():
    for s in ("", "a", "hello world", "naïve café ☕ 日本語", "x" * 37):
        assert tok.decode(tok.encode(s)) == s


def test_chat_flattening_rule():
    msgs = [{"role": "system", "content": "S"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert tok.flatten_messages(msgs) == "<|system|>S\n<|user|>a\nb\n<|assistant|>"


def test_block_hashes_are_chained_over_full_blocks():
    bs = 4  # tokens -> 16 bytes per block
    a = tok.block_hashes(b"A" * 16 + b"B" * 16 + b"C" * 10, bs)
    assert len(a) == 2  # trailing partial block is not hashed
    b = tok.block_hashes(b"A" * 16 + b"B" * 16 + b"D" * 16, bs)
    assert a == b[:2]
    c = tok.block_hashes(b"Z" * 16 + b"B" * 16, bs)
    assert c[1] != a[1]  # same block content, different prefix -> different hash
    assert tok.block_hashes(b"A" * 16, bs, salt="lora") != a[:1]


def test_server_counts_match_tokenize_endpoint(client):
    prompt = "Ünïcödé prompt with some words " * 7
    t = client.post("/tokenize", json={"model": MODEL, "prompt": prompt}).json()
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 1}).json()
    assert r["usage"]["prompt_tokens"] == t["count"] == tok.count_tokens(prompt.encode())
    msgs = [{"role": "user", "content": prompt}]
    t = client.post("/tokenize", json={"model": MODEL, "messages": msgs}).json()
    r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": msgs, "max_tokens": 1}).json()
    assert r["usage"]["prompt_tokens"] == t["count"] == tok.count_tokens(tok.flatten_messages(msgs).encode())


def test_token_id_prompts_count_as_given(client):
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": [1, 2, 3, 4, 5], "max_tokens": 1}).json()
    assert r["usage"]["prompt_tokens"] == 5


def test_generated_text_retokenizes_to_completion_tokens(client):
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": "go", "max_tokens": 25,
                                             "ignore_eos": True}).json()
    text = r["choices"][0]["text"]
    t = client.post("/tokenize", json={"prompt": text}).json()
    assert t["count"] == r["usage"]["completion_tokens"] == 25


def test_multi_turn_chat_reuses_prefix_cache(make_sim):
    s = make_sim()
    with httpx.Client(base_url=s.url) as c:
        msgs = [{"role": "system", "content": "You are helpful. " * 40}, {"role": "user", "content": "first"}]
        r1 = c.post("/v1/chat/completions", json={"model": MODEL, "messages": msgs, "max_tokens": 40,
                                                  "ignore_eos": True}).json()
        msgs += [{"role": "assistant", "content": r1["choices"][0]["message"]["content"]},
                 {"role": "user", "content": "second"}]
        r2 = c.post("/v1/chat/completions", json={"model": MODEL, "messages": msgs, "max_tokens": 10}).json()
    cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
    p1 = r1["usage"]["prompt_tokens"]
    out1 = r1["usage"]["completion_tokens"]
    # the previous prompt *and* the previous answer's full blocks are reused
    assert cached >= (p1 + out1) // 16 * 16 - 16
    assert cached > p1 // 16 * 16
    assert cached % 16 == 0
