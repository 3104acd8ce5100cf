"""Makes tokenizer_pre_reference.json: how Hugging Face tokenizers (Rust, Oniguruma regexes)
cuts a fixed random corpus under the pre-tokenizers of SmolLM2, Qwen2, Llama 3 and GPT-2, so
tokenizer_pre_test.cpp can check our PCRE2 versions against an independent implementation.

Run by hand in any venv with tokenizers (versions recorded in the output):
    python tests/kernels/tokenizer_pre_reference.py
Deterministic (fixed seed). Characters are drawn from Unicode 14 or older so the reference's
newer Unicode tables cannot disagree with PCRE2 10.42's on what a character is.
"""

import json
import random
from importlib import metadata
from pathlib import Path

from tokenizers import Regex
from tokenizers import pre_tokenizers as P

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PRESETS = {
    "gpt2": P.ByteLevel(add_prefix_space=False, use_regex=True),
    "smollm": P.Sequence([P.Digits(individual_digits=True),
                          P.ByteLevel(add_prefix_space=False, use_regex=True)]),
    "qwen2": P.Split(Regex(QWEN2), behavior="isolated"),
    "llama-bpe": P.Split(Regex(LLAMA3), behavior="isolated"),
}
BYTE_LEVEL = {"gpt2", "smollm"}  # these report pieces in the byte-level alphabet

POOL = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u0085", "\u2028", "\x0b", "\x1c",
        "'s", "'S", "'LL", "'ll", "'re", "'Ve", "'d", "'", "0123456789", "12345", "\u0661\u0662",
        "\u2460\u2461", "\u216b", "abcXYZ", "\u00e9\u00e0\u00fc\u00df", "\u4f60\u597d", "\u65e5\u672c\u30ab\u30bf",
        "\ud55c\uad6d\uc5b4", "\u041f\u0440\u0438\u0432\u0435\u0442", "\u0645\u0631\u062d\u0628\u0627",
        "\U0001f642\U0001f680", "!?.,;:", "()[]{}<>", "#$%&*+-=/\\|^~`@_\"", "e\u0301", "\u200b",
        "x", "The", " the", "   ", "\n\n\n"]


def byte_decoder():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    codes, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, codes)}


def main():
    rng = random.Random(20241130)
    texts = []
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(1, 10)):
            if rng.random() < 0.8:
                parts.append(rng.choice(POOL))
            else:
                parts.append(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF),
                                             rng.randint(0x3000, 0x9FFF)])))
        texts.append("".join(parts))
    decode = byte_decoder()
    out = {"made_by": "tests/kernels/tokenizer_pre_reference.py",
           "versions": {"tokenizers": metadata.version("tokenizers")},
           "texts": texts, "pieces": {}}
    for name, pre in PRESETS.items():
        rows = []
        for text in texts:
            pieces = [p for p, _ in pre.pre_tokenize_str(text)]
            if name in BYTE_LEVEL:
                pieces = [bytes(decode[c] for c in p).decode("utf-8") for p in pieces]
            rows.append(pieces)
        out["pieces"][name] = rows
    path = Path(__file__).with_name("tokenizer_pre_reference.json")
    path.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
