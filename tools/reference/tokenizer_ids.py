"""Makes tests/fixtures/tokenizer-smollm2.json: token ids for a corpus of hard strings under
the SmolLM2-135M-Instruct GGUF's tokenizer (byte-level BPE, pre-tokenizer "smollm"), from
independent implementations, for our tokenizer's tests.

Run by hand from the repository root, in the reference venv (see tools/reference/README.md):

    scripts/fetch-model && .venv-ref/bin/python tools/reference/tokenizer_ids.py

Optional argument: the GGUF path (default: the cache path scripts/fetch-model prints).
Deterministic: fixed corpus, no randomness.

References recorded per string (special tokens in the text are parsed as special tokens by
all of them; no BOS is added, see "bos"):
  llama_cpp       llama.cpp's tokenizer through llama-cpp-python (Llama(vocab_only=True)
                  .tokenize(text, add_bos=False, special=True)), which implements the GGUF's
                  tokenizer.ggml.pre = "smollm": split every digit on its own (\\p{N}), then the
                  GPT-2 split regex, then BPE.
  hf_gguf         Hugging Face transformers' own GGUF import (AutoTokenizer.from_pretrained(dir,
                  gguf_file=...)), a tokenizers BPE built from the GGUF vocab and merges. Its
                  GGUF converter installs the plain GPT-2 ByteLevel pre-tokenizer and ignores
                  tokenizer.ggml.pre, so it has no digit split.
  hf_smollm_pipeline  the same Hugging Face tokenizers BPE (same vocab and merges) with the
                  pre-tokenizer of SmolLM2's original tokenizer.json: Digits(individual_digits)
                  then ByteLevel(GPT-2 regex). An independent implementation (Rust) of the
                  pipeline llama.cpp's "smollm" names (C++).
"expected" is the ids llama_cpp and hf_smollm_pipeline agree on (null when they do not);
"agree" says whether all three match. Each string also records whether llama.cpp decodes its
ids back to the same text.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from fixture_json import FIXTURES, default_model_path, provenance, write_json

COMMAND = "scripts/fetch-model && .venv-ref/bin/python tools/reference/tokenizer_ids.py"

# (label, text). Labels are stable names a consumer can report failures with.
CORPUS = [
    ("english", "Hello world! The quick brown fox jumps over the lazy dog."),
    ("english_leading_space", " Hello"),
    ("capitals", "HELLO World, hELLo wORLD"),
    ("contractions", "don't won't it's we're they've I'd you'll"),
    ("contractions_upper", "I'LL DON'T IT'S WE'RE"),
    ("punctuation", "Wait... what?! (yes) [no] {maybe} -- 'quoted' \"double\""),
    ("chinese_simplified", "我爱北京天安门，今天天气很好。"),
    ("chinese_traditional", "臺灣的繁體中文與香港粵語。"),
    ("japanese", "こんにちは、世界。カタカナと漢字とひらがな。"),
    ("korean", "안녕하세요, 세계! 한국어 문장입니다."),
    ("arabic", "مرحبا بالعالم، كيف حالك؟"),
    ("emoji", "I love 🍕 and 🚀!"),
    ("emoji_zwj_family", "👨‍👩‍👧‍👦"),
    ("emoji_zwj_flag_skin", "🏳️‍🌈 👍🏽 🇫🇷"),
    ("combining_marks", "e\u0301 cafe\u0301 n\u0303 A\u030a"),
    ("precomposed_accents", "café naïve Ångström"),
    ("mixed_scripts", "GPU加速 with CUDA 12.4 и русский текст"),
    ("spaces_run", "a    b"),
    ("tabs", "\tindented\t\ttext\t"),
    ("newlines", "line one\nline two\n\nline four\n"),
    ("crlf", "windows\r\nline\r\nendings\r\n"),
    ("trailing_spaces", "trailing   "),
    ("leading_spaces", "   leading"),
    ("only_whitespace", " \t \n "),
    ("spaces_before_digits", "Total:  42 items"),
    ("digits_long", "3141592653589793238462643383279"),
    ("decimal", "pi is 3.14159 and e is 2.71828"),
    ("thousands", "1,234,567 dollars"),
    ("numbers_mixed", "v2 h264 2024-11-30 1e-5 0x1F"),
    ("digits_after_space", "in 2024 and 1999"),
    ("digits_after_space_runs", "x =   100\n  2. item\t 5"),
    ("digits_after_newlines", "items:\n\n1\n 2\r\n3"),
    ("code_python", "def add(a, b):\n    return a + b  # sum\n"),
    ("code_cpp", "int main() { std::vector<int> v{1,2,3}; return v[0]; }"),
    ("code_json", '{"key": [1, 2.5, null], "nested": {"x": true}}'),
    ("url_email", "https://example.com/path?q=1&r=two user@example.org"),
    ("special_chat", "<|im_start|>user\nhi<|im_end|>"),
    ("special_inline", "before<|endoftext|>after"),
    ("special_adjacent", "<|im_start|><|im_end|>"),
    ("special_lookalike", "<|im_start |> <im_start> <|IM_START|>"),
    ("repeated_chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!!!!!!!!...."),
    ("single_char", "x"),
]


def hf_tokenizers(model: Path):
    """Both Hugging Face tokenizers: transformers' GGUF import, and the same BPE with the
    SmolLM2 pre-tokenizer. transformers wants a folder and a file name inside it."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    folder = Path(tempfile.mkdtemp(prefix="bastion-tok-"))
    try:
        (folder / model.name).symlink_to(model.resolve())
        gguf_import = AutoTokenizer.from_pretrained(str(folder), gguf_file=model.name)
    finally:
        shutil.rmtree(folder)
    pipeline = gguf_import.backend_tokenizer.__class__.from_str(gguf_import.backend_tokenizer.to_str())
    pipeline.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    return gguf_import, pipeline


def main() -> None:
    from llama_cpp import Llama

    model = Path(sys.argv[1]) if len(sys.argv) > 1 else default_model_path()
    if not model.is_file():
        sys.exit(f"tokenizer_ids: {model} is missing; run scripts/fetch-model first")
    llama = Llama(model_path=str(model), vocab_only=True, verbose=False)
    gguf_import, pipeline = hf_tokenizers(model)

    def by_llama_cpp(text: str, add_bos: bool = False) -> list[int]:
        return llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    entries = []
    for label, text in CORPUS:
        ids_llama = by_llama_cpp(text)
        ids_gguf = gguf_import.encode(text, add_special_tokens=False)
        ids_pipeline = pipeline.encode(text, add_special_tokens=False).ids
        decoded = llama.detokenize(ids_llama, special=True).decode("utf-8", errors="replace")
        entry = {
            "label": label,
            "text": text,
            "expected": ids_llama if ids_llama == ids_pipeline else None,
            "agree": ids_llama == ids_gguf == ids_pipeline,
            "llama_cpp": ids_llama,
            "hf_gguf": ids_gguf,
            "hf_smollm_pipeline": ids_pipeline,
            "llama_cpp_decodes_back": decoded == text,
        }
        entries.append(entry)

    disagreements = [
        {"label": e["label"], "differs": [k for k in ("hf_gguf", "hf_smollm_pipeline") if e[k] != e["llama_cpp"]]}
        for e in entries
        if not e["agree"]
    ]
    probe = "Hello"
    fixture = {
        **provenance(
            "tools/reference/tokenizer_ids.py",
            COMMAND,
            ["llama_cpp_python", "transformers", "tokenizers", "gguf"],
        ),
        "model": model.name,
        "special_tokens_parsed": True,
        "bos": {
            "id": llama.token_bos(),
            "gguf_add_bos_token": llama.metadata.get("tokenizer.ggml.add_bos_token") == "true",
            "llama_cpp_adds_bos": by_llama_cpp(probe, add_bos=True) != by_llama_cpp(probe),
            "hf_gguf_adds_bos": gguf_import.encode(probe) != gguf_import.encode(probe, add_special_tokens=False),
            "note": "ids below never include BOS; llama_cpp_adds_bos is what llama.cpp does with"
            " add_special=true for this model (it follows tokenizer.ggml.add_bos_token)",
        },
        "disagreements": disagreements,
        "strings": entries,
    }
    write_json(FIXTURES / "tokenizer-smollm2.json", fixture)
    for d in disagreements:
        print(f"disagreement: {d['label']}: {', '.join(d['differs'])} differ from llama_cpp", file=sys.stderr)


if __name__ == "__main__":
    main()
