"""Checks tests/fixtures/tiny-llama/ and tests/fixtures/tiny-qwen2/ with a third,
independent implementation: a plain-numpy Llama/Qwen2 forward pass (float64) over weights read
straight from the safetensors bytes (own header parser, own bfloat16 decoding), configured only
from config.json. It makes nothing; it proves that the fixtures can be reproduced by someone
who follows the file formats and the model definition, and it spells out the conventions our
kernels must follow (RMSNorm, rotate-half rope, GQA head mapping, SwiGLU, tied lm_head).

Run by hand from the repository root, in the reference venv (needs numpy only):

    .venv-ref/bin/python tools/reference/check_tiny_numpy.py

Exit status 0 when every logit matches within 1e-4 (absolute, on logits of magnitude ~10)
and every greedy token matches; 1 otherwise, naming what differed.
"""

import json
import struct
import sys

import numpy as np

from fixture_json import FIXTURES

TOLERANCE = 1e-4


def read_safetensors(path) -> dict:
    """name -> float64 array. Format: u64 little-endian header length, JSON header
    {name: {dtype, shape, data_offsets: [begin, end]}} (offsets relative to the data after the
    header), then the data."""
    blob = path.read_bytes()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len])
    data = memoryview(blob)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "F32":
            values = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "BF16":  # the top 16 bits of a float32
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            values = np.frombuffer(raw, dtype="<f2")
        else:
            raise ValueError(f"{path.name}: {name} has dtype {info['dtype']}, not handled here")
        tensors[name] = values.astype(np.float64).reshape(info["shape"])
    return tensors


def load(directory):
    config = json.loads((directory / "config.json").read_text())
    index = directory / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    weights = {}
    for name in files:
        weights.update(read_safetensors(directory / name))
    return config, weights


def forward(config, w, ids) -> np.ndarray:
    """Logits [len(ids), vocab] for one sequence, positions 0..len-1, causal."""
    hidden, heads, kv_heads = (
        config["hidden_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
    )
    head_dim = config.get("head_dim") or hidden // heads
    theta = config["rope_theta"] if "rope_theta" in config else config["rope_parameters"]["rope_theta"]
    eps = config["rms_norm_eps"]
    n = len(ids)

    def rms_norm(x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight

    def linear(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    # Rope, "rotate half" layout: dimension i pairs with i + head_dim/2 (not adjacent pairs).
    inv_freq = theta ** (-np.arange(0, head_dim, 2) / head_dim)
    angles = np.arange(n)[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)[:, None, :]

    def rope(x):  # x: [n, heads, head_dim]
        half = head_dim // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    causal = np.triu(np.full((n, n), -np.inf), k=1)
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"])
        q = rope(linear(h, p + "self_attn.q_proj").reshape(n, heads, head_dim))
        k = rope(linear(h, p + "self_attn.k_proj").reshape(n, kv_heads, head_dim))
        v = linear(h, p + "self_attn.v_proj").reshape(n, kv_heads, head_dim)
        group = heads // kv_heads  # query head j reads kv head j // group
        out = np.empty((n, heads, head_dim))
        for j in range(heads):
            scores = q[:, j] @ k[:, j // group].T / np.sqrt(head_dim) + causal
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            out[:, j] = (scores / scores.sum(axis=-1, keepdims=True)) @ v[:, j // group]
        x = x + linear(out.reshape(n, heads * head_dim), p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"])
        gate = linear(h, p + "mlp.gate_proj")
        x = x + linear(gate / (1 + np.exp(-gate)) * linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def check(name: str) -> list[str]:
    directory = FIXTURES / name
    config, weights = load(directory)
    reference = json.loads((directory / "reference.json").read_text())
    problems, worst = [], 0.0
    for index, prompt in enumerate(reference["prompts"]):
        logits = forward(config, weights, prompt["ids"])
        expected = {len(prompt["ids"]) - 1: prompt["last_logits"]}
        for position, row in enumerate(prompt.get("all_logits", [])):
            expected[position] = row
        for position, row in expected.items():
            error = float(np.max(np.abs(logits[position] - np.asarray(row))))
            worst = max(worst, error)
            if error > TOLERANCE:
                problems.append(f"{name} prompt {index} position {position}: max |diff| {error:.3g}")
        sequence = list(prompt["ids"])
        for step, token in enumerate(prompt["greedy"]):
            chosen = int(np.argmax(forward(config, weights, sequence)[-1]))
            if chosen != token:
                problems.append(f"{name} prompt {index} greedy step {step}: numpy {chosen}, fixture {token}")
                break
            sequence.append(chosen)
    print(f"{name}: {len(reference['prompts'])} prompts, worst logit |diff| {worst:.3g}", file=sys.stderr)
    return problems


def main() -> None:
    problems = check("tiny-llama") + check("tiny-qwen2")
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
