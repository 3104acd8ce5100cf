"""Makes tests/fixtures/smollm2-llamacpp.json: greedy generations of SmolLM2-135M-Instruct
(Q4_1 GGUF) by llama.cpp (through llama-cpp-python, CPU, n_threads=2), for our engine's
end-to-end test on the real model.

Run by hand from the repository root, in the reference venv (see tools/reference/README.md):

    scripts/fetch-model && .venv-ref/bin/python tools/reference/llamacpp_greedy.py

Optional argument: the GGUF path (default: the cache path scripts/fetch-model prints).
Deterministic: greedy (argmax of the raw logits, which is what temperature 0 / top_k 1 means),
fixed prompts, fixed thread count.

For each prompt the fixture holds: the prompt text, its ids as llama.cpp tokenized them
(special tokens parsed; BOS only if the GGUF asks for it, which this one does not), NEW_TOKENS
generated ids (generation does NOT stop at end-of-generation tokens, so every consumer
compares the same number of steps; first_eog_index says where a stopping engine would have
stopped), the decoded text up to that point, and for every step the top two raw logits
[best id, best logit, second id, second logit]. llama.cpp's CPU path quantizes activations
for its Q4_1/Q8_0 dot products, so another engine's logits differ a little: a divergence at
a step whose top-2 gap is small is a near tie, not necessarily a bug.

Chat prompts are rendered with the GGUF's own chat template (tokenizer.chat_template, jinja2,
add_generation_prompt=True), so they carry the template's default system prompt.
"""

import sys
from pathlib import Path

import numpy as np

from fixture_json import FIXTURES, default_model_path, float32_list, provenance, write_json

COMMAND = "scripts/fetch-model && .venv-ref/bin/python tools/reference/llamacpp_greedy.py"
N_THREADS = 2
N_CTX = 512
NEW_TOKENS = 48

# (label, kind, text): kind "chat" is a user message rendered with the chat template,
# "raw" is plain completion text.
PROMPTS = [
    ("chat_capital_of_france", "chat", "What is the capital of France?"),
    ("chat_arithmetic", "chat", "What is 12 plus 7? Answer with a number."),
    ("raw_fox", "raw", "The quick brown fox"),
    ("raw_python", "raw", "def fibonacci(n):\n"),
    ("raw_story", "raw", "Once upon a time, in a small village,"),
]


def render_chat(template: str, user_text: str) -> str:
    """The chat template rendered the way Hugging Face renders chat templates (jinja2
    sandbox, trim_blocks and lstrip_blocks on)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template).render(
        messages=[{"role": "user", "content": user_text}], add_generation_prompt=True
    )


def main() -> None:
    import llama_cpp
    from llama_cpp import Llama

    model = Path(sys.argv[1]) if len(sys.argv) > 1 else default_model_path()
    if not model.is_file():
        sys.exit(f"llamacpp_greedy: {model} is missing; run scripts/fetch-model first")
    llm = Llama(
        model_path=str(model),
        n_ctx=N_CTX,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        logits_all=True,
        seed=0,
        verbose=False,
    )
    template = llm.metadata["tokenizer.chat_template"]
    vocab = llama_cpp.llama_model_get_vocab(llm.model)

    def is_eog(token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(vocab, token))

    results = []
    for label, kind, text in PROMPTS:
        prompt = render_chat(template, text) if kind == "chat" else text
        prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(prompt_ids)
        generated, top2 = [], []
        for _ in range(NEW_TOKENS):
            logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            order = np.argsort(-logits, kind="stable")[:2]
            best, second = int(order[0]), int(order[1])
            top2.append([best, float32_list([logits[best]])[0], second, float32_list([logits[second]])[0]])
            generated.append(best)
            llm.eval([best])
        first_eog = next((i for i, t in enumerate(generated) if is_eog(t)), None)
        shown = generated if first_eog is None else generated[:first_eog]
        results.append(
            {
                "label": label,
                "kind": kind,
                "user_text": text if kind == "chat" else None,
                "prompt": prompt,
                "prompt_ids": prompt_ids,
                "generated": generated,
                "first_eog_index": first_eog,
                "text_until_eog": llm.detokenize(shown).decode("utf-8", errors="replace"),
                "top2": top2,
            }
        )
        print(f"{label}: {results[-1]['text_until_eog']!r}", file=sys.stderr)

    fixture = {
        **provenance("tools/reference/llamacpp_greedy.py", COMMAND, ["llama_cpp_python", "numpy"]),
        "model": model.name,
        "settings": {
            "n_threads": N_THREADS,
            "n_ctx": N_CTX,
            "sampling": "greedy: argmax of raw logits (ties: lowest id)",
            "prompt_eval": "whole prompt in one batch, then one token per step with the KV cache",
            "stops_at_eog": False,
        },
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "prompts": results,
    }
    write_json(FIXTURES / "smollm2-llamacpp.json", fixture)


if __name__ == "__main__":
    main()
