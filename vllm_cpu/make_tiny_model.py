"""Make the tiny model of `recipe.py` under $IGW_CACHE_DIR (run with the vLLM environment's Python).

    python vllm_cpu/make_tiny_model.py              # builds once, then prints where it is
    python vllm_cpu/make_tiny_model.py --out DIR    # a fresh build into DIR (must not exist)

Output, in ``tiny-model-<hash>/`` (see locate.py):

    model/                 config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json
    adapters/tiny-lora-a/  adapter_config.json, adapter_model.safetensors   (and tiny-lora-b)
    chat_template.jinja    the template vLLM gets with --chat-template
    manifest.json          recipe hash, sha256 of every file, build time (written last)

The build happens in a temporary sibling folder renamed into place at the end, so an interrupted
build leaves nothing that looks finished and two concurrent builds cannot mix files. Weights
depend only on the recipe's seeds: the same recipe and library versions give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import locate  # noqa: E402  (stdlib-only sibling; this file runs as a script)
import recipe  # noqa: E402

BASE_MODEL_LABEL = "igw-tiny-llama"
"""What adapter_config.json names as its base (a label, not a path, so files do not depend on where they were built)."""


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = recipe.TOKENIZER
    special = [spec["pad"], spec["bos"], spec["eos"], *spec["extra_special"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec["vocab_size"],
        min_frequency=spec["min_frequency"],
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(recipe.corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        pad_token=spec["pad"],
        additional_special_tokens=spec["extra_special"],
    )
    fast.chat_template = recipe.CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    return fast


def build_model(out: Path, tokenizer) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = dict(recipe.MODEL)
    dtype = getattr(torch, spec.pop("torch_dtype"))
    vocab = -(-len(tokenizer) // 64) * 64  # padded like real checkpoints; ids past the tokenizer are never produced by it
    config = LlamaConfig(
        vocab_size=vocab,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **spec,
    )
    torch.manual_seed(recipe.SEED)
    model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(str(out), safe_serialization=True)


def build_adapter(model_dir: Path, out: Path, seed_offset: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    spec = recipe.LORA
    torch.manual_seed(recipe.SEED + seed_offset)
    base = LlamaForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(
        r=spec["r"], lora_alpha=spec["lora_alpha"], target_modules=list(spec["target_modules"]),
        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
    ))
    generator = torch.Generator().manual_seed(recipe.SEED + 1000 * seed_offset)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * spec["b_std"])
    peft_model.save_pretrained(str(out), safe_serialization=True)
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = BASE_MODEL_LABEL
    config["target_modules"] = sorted(config["target_modules"])  # peft writes a set: order varies per process
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "README.md").unlink(missing_ok=True)  # peft's model card names the build folder


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def build(target: Path) -> Path:
    """Build into a temporary sibling of `target`, then rename it into place."""
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))
    try:
        model_dir = work / "model"
        tokenizer = build_tokenizer(model_dir)
        build_model(model_dir, tokenizer)
        (work / "chat_template.jinja").write_text(recipe.CHAT_TEMPLATE + "\n")
        for name, offset in recipe.ADAPTERS.items():
            build_adapter(model_dir, work / "adapters" / name, offset)
        manifest = {
            "recipe_hash": locate.recipe_hash(),
            "tokenizer_vocab": len(tokenizer),
            "build_seconds": round(time.monotonic() - started, 1),
            "files": _digests(work),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(work, target)
        except OSError:
            if not (target / "manifest.json").exists():
                raise
            shutil.rmtree(work)  # another build finished first: keep its identical result
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def main(argv: list[str]) -> int:
    info = locate.locate()
    assert tuple(recipe.ADAPTERS) == locate.ADAPTER_NAMES, "recipe.ADAPTERS and locate.ADAPTER_NAMES disagree"
    if argv[1:2] == ["--out"] and len(argv) == 3:
        build(Path(argv[2]))  # a fresh copy elsewhere (the determinism check compares it with the cache)
        print(argv[2])
        return 0
    if len(argv) > 1:
        print(f"usage: {argv[0]} [--out NEW_DIR]", file=sys.stderr)
        return 2
    root = Path(info["model_root"])
    if info["model_ready"]:
        print(f"tiny model: cached at {root}")
    else:
        print(f"tiny model: building {root.name} ...", flush=True)
        build(root)
        manifest = json.loads((root / "manifest.json").read_text())
        print(f"tiny model: built in {manifest['build_seconds']} s at {root}")
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
