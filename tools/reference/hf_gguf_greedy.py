"""Makes tests/fixtures/smollm2-transformers.json: the same greedy runs as
smollm2-llamacpp.json (same prompt ids, same step count), computed by Hugging Face
transformers after it DEQUANTIZES the SmolLM2 Q4_1/Q8_0 GGUF to float32 (its GGUF import).
This is what an engine that dequantizes the weights and computes in float32 should get; the
llama.cpp fixture is what an engine that also quantizes activations (as llama.cpp's CPU path
does) gets. Where the two fixtures differ, the top-2 gaps of both show how close the call was.

Run by hand from the repository root, in the reference venv (see tools/reference/README.md),
after llamacpp_greedy.py (it reads that fixture's prompt ids):

    scripts/fetch-model && .venv-ref/bin/python tools/reference/hf_gguf_greedy.py

Optional argument: the GGUF path. Deterministic: greedy, float32, eager attention, 2 threads.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from fixture_json import FIXTURES, default_model_path, float32_list, provenance, write_json

COMMAND = "scripts/fetch-model && .venv-ref/bin/python tools/reference/hf_gguf_greedy.py"


def main() -> None:
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    model_path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_model_path()
    if not model_path.is_file():
        sys.exit(f"hf_gguf_greedy: {model_path} is missing; run scripts/fetch-model first")
    llamacpp = json.loads((FIXTURES / "smollm2-llamacpp.json").read_text())
    new_tokens = len(llamacpp["prompts"][0]["generated"])

    folder = Path(tempfile.mkdtemp(prefix="bastion-gguf-"))
    try:
        (folder / model_path.name).symlink_to(model_path.resolve())
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), gguf_file=model_path.name, dtype=torch.float32, attn_implementation="eager"
        ).eval()
    finally:
        shutil.rmtree(folder)

    results = []
    for prompt in llamacpp["prompts"]:
        sequence = list(prompt["prompt_ids"])
        generated, top2 = [], []
        with torch.no_grad():
            output = model(torch.tensor([sequence]), use_cache=True)
            for _ in range(new_tokens):
                logits = output.logits[0, -1].float()
                values, ids = torch.topk(logits, 2)
                best = int(ids[0])
                top2.append([best, *float32_list([values[0]]), int(ids[1]), *float32_list([values[1]])])
                generated.append(best)
                output = model(
                    torch.tensor([[best]]), past_key_values=output.past_key_values, use_cache=True
                )
        same = next((i for i, (a, b) in enumerate(zip(generated, prompt["generated"])) if a != b), None)
        results.append(
            {
                "label": prompt["label"],
                "prompt_ids": prompt["prompt_ids"],
                "generated": generated,
                "first_difference_from_llamacpp": same,
                "top2": top2,
            }
        )
        print(f"{prompt['label']}: first difference from llama.cpp at {same}", file=sys.stderr)

    fixture = {
        **provenance("tools/reference/hf_gguf_greedy.py", COMMAND, ["torch", "transformers", "gguf"]),
        "model": model_path.name,
        "settings": {
            "weights": "GGUF dequantized to float32 by transformers (gguf package dequantizer)",
            "compute_dtype": "float32",
            "attention": "eager",
            "sampling": "greedy: argmax of raw logits",
            "prompt_ids_from": "smollm2-llamacpp.json",
            "stops_at_eog": False,
        },
        "prompts": results,
    }
    write_json(FIXTURES / "smollm2-transformers.json", fixture)


if __name__ == "__main__":
    main()
