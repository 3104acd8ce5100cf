"""Makes tests/fixtures/smollm2-metadata.json: facts about the SmolLM2-135M-Instruct Q4_1 GGUF
read with the `gguf` package (the GGUF reader maintained with llama.cpp), for our GGUF loader's
tests to assert: header, architecture hyper-parameters, tokenizer metadata and special token
ids, the chat template, and a summary of the tensors (names, types, shapes of a few).

Run by hand from the repository root, in the reference venv (see tools/reference/README.md):

    scripts/fetch-model && .venv-ref/bin/python tools/reference/gguf_metadata.py

Optional argument: the GGUF path (default: the cache path scripts/fetch-model prints).
Deterministic: it only reads the file.
"""

import collections
import hashlib
import sys
from pathlib import Path

from fixture_json import FIXTURES, default_model_path, provenance, write_json

import gguf

COMMAND = "scripts/fetch-model && .venv-ref/bin/python tools/reference/gguf_metadata.py"

# Scalar keys copied as they are; arrays (tokens, scores, merges) are summarised instead.
SCALAR_KEYS = [
    "general.architecture",
    "general.name",
    "general.file_type",
    "general.quantization_version",
    "general.alignment",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.freq_base",
    "llama.rope.dimension_count",
    "llama.vocab_size",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.chat_template",
]


def field_value(field):
    """The value of one key/value field as plain Python (str, int, float, bool or list)."""
    if hasattr(field, "contents"):
        return field.contents()
    # Older gguf: parts[data[i]] are numpy arrays; strings are uint8 arrays.
    main_type = field.types[0]
    values = []
    for index in field.data:
        part = field.parts[index]
        if main_type == gguf.GGUFValueType.STRING or (
            main_type == gguf.GGUFValueType.ARRAY and field.types[-1] == gguf.GGUFValueType.STRING
        ):
            values.append(bytes(part).decode("utf-8"))
        else:
            values.append(part.tolist()[0])
    return values if main_type == gguf.GGUFValueType.ARRAY else values[0]


def plain(value):
    """numpy scalars to Python; float32 metadata printed in its shortest float32 form."""
    import numpy as np

    if isinstance(value, (np.floating, float)) and not isinstance(value, bool):
        return float(np.format_float_scientific(np.float32(value), unique=True, trim="-"))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_model_path()
    if not path.is_file():
        sys.exit(f"gguf_metadata: {path} is missing; run scripts/fetch-model first")
    reader = gguf.GGUFReader(str(path))

    metadata = {}
    for key in SCALAR_KEYS:
        if key in reader.fields:
            metadata[key] = plain(field_value(reader.fields[key]))

    tokens = field_value(reader.fields["tokenizer.ggml.tokens"])
    token_types = [int(t) for t in field_value(reader.fields["tokenizer.ggml.token_type"])]
    merges = field_value(reader.fields["tokenizer.ggml.merges"])
    type_names = {int(t): t.name for t in gguf.TokenType}
    type_counts = collections.Counter(type_names.get(t, str(t)) for t in token_types)
    non_normal = [
        {"id": i, "text": tokens[i], "type": type_names.get(t, str(t))}
        for i, t in enumerate(token_types)
        if t != int(gguf.TokenType.NORMAL)
    ]

    tensor_types = collections.Counter(t.tensor_type.name for t in reader.tensors)
    names = [t.name for t in reader.tensors]
    # A few tensors with their GGUF shape (ne[0] first, i.e. the fastest-varying dimension).
    sample_names = [
        "token_embd.weight",
        "output_norm.weight",
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.attn_v.weight",
        "blk.0.attn_output.weight",
        "blk.0.ffn_gate.weight",
        "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight",
        "blk.0.attn_norm.weight",
        "blk.0.ffn_norm.weight",
    ]
    by_name = {t.name: t for t in reader.tensors}
    samples = {}
    for name in sample_names:
        if name in by_name:
            t = by_name[name]
            samples[name] = {
                "type": t.tensor_type.name,
                "ne": [int(n) for n in t.shape],
                "n_bytes": int(t.n_bytes),
                "data_offset": int(t.data_offset),
            }

    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    fixture = {
        **provenance("tools/reference/gguf_metadata.py", COMMAND, ["gguf", "numpy"]),
        "file": {
            "name": path.name,
            "bytes": path.stat().st_size,
            "sha256": sha256,
            "gguf_version": int(field_value(reader.fields["GGUF.version"])),
            "tensor_count": len(reader.tensors),
            "kv_count": int(field_value(reader.fields["GGUF.kv_count"])),
            # Absolute file offset where tensor data starts (after header, metadata, tensor
            # infos and padding to the alignment; general.alignment absent means 32).
            "tensor_data_offset": int(reader.data_offset),
        },
        "metadata": metadata,
        "tokenizer": {
            "token_count": len(tokens),
            "merge_count": len(merges),
            "first_merges": merges[:5],
            "token_type_counts": dict(sorted(type_counts.items())),
            "non_normal_tokens": non_normal,
            "first_tokens": tokens[:20],
            "last_tokens": tokens[-5:],
        },
        "tensors": {
            "type_counts": dict(sorted(tensor_types.items())),
            "has_output_weight": "output.weight" in names,
            "first_names": names[:12],
            "samples": samples,
            "samples_note": "ne: GGUF dimensions, ne[0] fastest-varying; data_offset: absolute"
            " in the file; n_bytes: stored (quantized) size",
        },
    }
    write_json(FIXTURES / "smollm2-metadata.json", fixture)


if __name__ == "__main__":
    main()
