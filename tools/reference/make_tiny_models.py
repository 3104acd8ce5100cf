"""Makes tests/fixtures/tiny-llama/ and tests/fixtures/tiny-qwen2/: two tiny RANDOM
transformer models written by Hugging Face transformers (save_pretrained: config.json,
generation_config.json, safetensors weights) plus reference.json with what transformers
computes from them, for our safetensors loader and CPU/CUDA kernels to reproduce.

Run by hand from the repository root, in the reference venv (see tools/reference/README.md):

    .venv-ref/bin/python tools/reference/make_tiny_models.py

Deterministic: every weight and prompt comes from fixed seeds (SEED below), and the
references are computed in float32 with the eager attention implementation on the CPU.

What each model exercises (a loader or kernel bug here changes the numbers):
  tiny-llama  float32, SHARDED (model.safetensors.index.json + 3 shards), grouped-query
              attention (4 query heads, 2 kv heads), rope_theta 500000, rms eps 1e-5, tied
              embeddings (no lm_head.weight stored), config.json in transformers 5 layout
              (rope under "rope_parameters").
  tiny-qwen2  bfloat16, one model.safetensors, QKV biases set to non-zero random values,
              untied lm_head, rope_theta 1000000, rms eps 1e-6, config.json rewritten to the
              transformers 4 layout that real Qwen2 checkpoints have (top-level "rope_theta").
All RMSNorm weights are random around 1 so a missing or misplaced norm is caught.

reference.json (compact) holds, for each prompt (random token ids, lengths 1, 5, 12, 23):
  ids, last_logits (float32, whole vocabulary, at the last prompt position),
  greedy (32 tokens from model.generate(do_sample=False), KV-cached), greedy_top2 (per step:
  [best id, best logit, second id, second logit], to tell a real bug from a near tie), and for
  the 12-token prompt logits at EVERY position (prefill check). The references are computed
  from the model re-loaded from the files written here, so bf16 rounding is included.
"""

import json
import shutil
import sys

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from fixture_json import FIXTURES, float32_list, provenance, write_json

SEED = 20241130
COMMAND = ".venv-ref/bin/python tools/reference/make_tiny_models.py"
PROMPT_LENGTHS = [1, 5, 12, 23]
ALL_POSITIONS_PROMPT = 2  # index into PROMPT_LENGTHS: the 12-token prompt
NEW_TOKENS = 32


def llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )


def qwen2_config() -> Qwen2Config:
    return Qwen2Config(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )


def randomize(model: torch.nn.Module, generator: torch.Generator, scales: dict) -> None:
    """Replaces every parameter with seeded random values. Base scale: linear weights
    N(0, 1/fan_in), norm weights 1 + N(0, 0.2^2), biases N(0, 0.5^2) (non-zero, so forgetting
    the QKV bias changes the output). `scales` sets the embedding std and gains on o_proj /
    down_proj (residual writes) and q_proj / k_proj (sharper attention, so positions and rope
    matter). Chosen by trying a few: with the plain scales a tiny random model, above all a
    tied one, just repeats one token, which would make the greedy check weak."""
    with torch.no_grad():
        for name, param in model.named_parameters():  # tied weights appear once
            shape = param.shape
            if name.endswith("norm.weight"):
                value = 1.0 + 0.2 * torch.randn(shape, generator=generator)
            elif name.endswith(".bias"):
                value = 0.5 * torch.randn(shape, generator=generator)
            elif "embed_tokens" in name or name == "lm_head.weight":
                value = scales["embedding_std"] * torch.randn(shape, generator=generator)
            else:
                value = torch.randn(shape, generator=generator) / shape[-1] ** 0.5
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    value *= scales["residual_gain"]
                if name.endswith(("q_proj.weight", "k_proj.weight")):
                    value *= scales["qk_gain"]
            param.copy_(value)


def rewrite_config_v4_layout(config_path) -> None:
    """transformers 5 writes rope settings as {"rope_parameters": {...}}; real Qwen2 (and
    most published) checkpoints carry a top-level "rope_theta" instead. Rewrite to that
    layout so our loader is tested on both; transformers still reads it (checked below)."""
    config = json.loads(config_path.read_text())
    rope = config.pop("rope_parameters")
    if rope.get("rope_type", "default") != "default" or set(rope) - {"rope_type", "rope_theta"}:
        sys.exit(f"make_tiny_models: unexpected rope_parameters {rope}")
    config["rope_theta"] = rope["rope_theta"]
    config["rope_scaling"] = None
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def top2(logits: torch.Tensor) -> list:
    values, ids = torch.topk(logits.float(), 2)
    return [int(ids[0]), float32_list([values[0]])[0], int(ids[1]), float32_list([values[1]])[0]]


def references(model, prompts: list[list[int]]) -> list[dict]:
    """Everything the consumer compares against, computed by `model` in float32."""
    out = []
    model.generation_config.eos_token_id = None  # always 32 tokens, never stop early
    model.generation_config.pad_token_id = 0
    for index, ids in enumerate(prompts):
        input_ids = torch.tensor([ids])
        with torch.no_grad():
            logits = model(input_ids).logits[0]  # [positions, vocab]
            generated = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                return_dict_in_generate=True,
                output_logits=True,
            )
        greedy = generated.sequences[0, len(ids) :].tolist()
        if len(greedy) != NEW_TOKENS:
            sys.exit(f"make_tiny_models: generate returned {len(greedy)} tokens")
        step_top2 = [top2(step[0]) for step in generated.logits]
        # Cross-check the KV-cached generate against full recomputation without a cache.
        sequence = list(ids)
        with torch.no_grad():
            for expected in greedy:
                step_logits = model(torch.tensor([sequence]), use_cache=False).logits[0, -1]
                chosen = int(torch.argmax(step_logits))
                if chosen != expected:
                    sys.exit(f"make_tiny_models: cached generate disagrees with recompute at {sequence}")
                sequence.append(chosen)
        entry = {
            "ids": ids,
            "last_logits": float32_list(logits[-1]),
            "greedy": greedy,
            "greedy_top2": step_top2,
        }
        if index == ALL_POSITIONS_PROMPT:
            entry["all_logits"] = [float32_list(row) for row in logits]
        out.append(entry)
    return out


def make(name, config, scales, weights_dtype, max_shard_size, v4_layout, seed):
    from transformers import AutoConfig

    directory = FIXTURES / name
    shutil.rmtree(directory, ignore_errors=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomize(model, torch.Generator().manual_seed(seed), scales)
    model = model.to(weights_dtype)
    save_args = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(directory, **save_args)
    if v4_layout:
        rewrite_config_v4_layout(directory / "config.json")
        reread = AutoConfig.from_pretrained(directory)
        theta = reread.rope_parameters["rope_theta"]
        if theta != config.rope_parameters["rope_theta"]:
            sys.exit(f"make_tiny_models: rewritten config reads back rope_theta {theta}")

    # References come from the files just written, loaded as a consumer would, in float32.
    stored = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    prompts = [
        torch.randint(0, config.vocab_size, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS
    ]
    files = sorted(p.name for p in directory.iterdir())
    fixture = {
        **provenance(
            "tools/reference/make_tiny_models.py",
            COMMAND,
            ["torch", "transformers", "safetensors", "numpy"],
        ),
        "model": name,
        "seed": seed,
        "init_scales": scales,
        "files": files,
        "weights_dtype": str(weights_dtype).removeprefix("torch."),
        "compute_dtype": "float32",
        "attention": "eager (transformers), no sliding window",
        "new_tokens": NEW_TOKENS,
        "all_logits_prompt": ALL_POSITIONS_PROMPT,
        "prompts": references(stored, prompts),
    }
    write_json(directory / "reference.json", fixture)
    return fixture


def main() -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    llama_scales = {"embedding_std": 0.25, "residual_gain": 2.0, "qk_gain": 2.0}
    qwen2_scales = {"embedding_std": 1.0, "residual_gain": 3.0, "qk_gain": 2.0}
    make("tiny-llama", llama_config(), llama_scales, torch.float32, "200KB", False, SEED)
    make("tiny-qwen2", qwen2_config(), qwen2_scales, torch.bfloat16, None, True, SEED + 100)


if __name__ == "__main__":
    main()
