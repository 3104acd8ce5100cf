"""Bastion's CPU engine beside llama.cpp on the same GGUF, the same thread count, the same run.

    bench/setup-llama-cpp                      # once: .venv-bench with llama-cpp-python
    cmake --build build --target cpu_engine_bench
    .venv-bench/bin/python bench/cpu_engine_bench.py [--model PATH] [--threads 2]
        [--prompt-tokens 256] [--decode-steps 32] [--batch 16] [--rounds 3]

Each round runs, in this order, our SIMD path, llama.cpp, our scalar path (one process each
for ours: build/bench/cpu_engine_bench, JSON out), so background load hits all of them alike;
the medians of the rounds are compared, and so are the ratios within each round (printed per
round and as their median). Also a memory read-bandwidth probe, and decode's
fraction of it: weight bytes one decode step reads x tokens/s / bandwidth.

llama.cpp is fed the same synthetic token ids (cpu_engine_bench.cpp, synthetic_token): one
prefill of the prompt in one batch, then one token per decode call. Goals (issue 4): decode
batch 1 >= 1.0x llama.cpp, prefill >= 1.0x llama.cpp, aggregate decode at batch 16 >= 4x our
batch 1.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def synthetic_token(i, vocab):
    return 100 + (i * 7919) % (vocab - 200)


def run_ours(binary, model, threads, kernels, numerics, args):
    cmd = [str(binary), "--model", model, "--threads", str(threads), "--kernels", kernels,
           "--numerics", numerics, "--prompt-tokens", str(args.prompt_tokens),
           "--decode-steps", str(args.decode_steps), "--batch", str(args.batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class llama_cpp_runner:
    def __init__(self, model, threads, prompt_tokens):
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(model_path=model, n_threads=threads, n_threads_batch=threads,
                                   n_ctx=max(1024, prompt_tokens + 256), n_batch=512,
                                   n_ubatch=512, logits_all=False, verbose=False)
        self.vocab = self.llm.n_vocab()

    def run(self, args):
        llm = self.llm
        prompt = [synthetic_token(i, self.vocab) for i in range(args.prompt_tokens)]
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        t0 = time.perf_counter()
        llm.eval(prompt)
        prefill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in range(args.decode_steps):
            llm.eval([synthetic_token(args.prompt_tokens + s, self.vocab)])
        decode_s = time.perf_counter() - t0
        return {"prefill_tok_s": args.prompt_tokens / prefill_s,
                "decode_tok_s": args.decode_steps / decode_s}


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cache = os.environ.get("BASTION_MODEL_CACHE", os.path.expanduser("~/.cache/bastion/models"))
    p.add_argument("--model", default=os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--binary", default=str(ROOT / "build/bench/cpu_engine_bench"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--decode-steps", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--numerics", default="int8", choices=["int8", "exact"],
                   help="our matmul numerics (int8 is llama.cpp's)")
    p.add_argument("--no-scalar", action="store_true", help="skip our scalar path")
    args = p.parse_args()
    if not Path(args.binary).exists():
        sys.exit(f"{args.binary} missing: cmake --build build --target cpu_engine_bench")
    if not Path(args.model).exists():
        sys.exit(f"{args.model} missing: scripts/fetch-model")

    lcpp = llama_cpp_runner(args.model, args.threads, args.prompt_tokens)
    simd, scalar, llama = [], [], []
    for r in range(args.rounds):
        simd.append(run_ours(args.binary, args.model, args.threads, "auto", args.numerics, args))
        llama.append(lcpp.run(args))
        if not args.no_scalar:
            scalar.append(run_ours(args.binary, args.model, args.threads, "scalar", args.numerics,
                                   args))
        print(f"round {r + 1}/{args.rounds}: ours({simd[-1]['kernels']}) "
              f"prefill {simd[-1]['prefill_tok_s']:.1f} decode {simd[-1]['decode_tok_s']:.1f} "
              f"batch{args.batch} {simd[-1]['batch_decode_tok_s']:.1f} | llama.cpp prefill "
              f"{llama[-1]['prefill_tok_s']:.1f} decode {llama[-1]['decode_tok_s']:.1f}",
              file=sys.stderr)
    bw = json.loads(subprocess.run([args.binary, "--bandwidth", "--threads", str(args.threads)],
                                   check=True, capture_output=True, text=True).stdout)

    ours = {k: median(simd, k) for k in ("prefill_tok_s", "decode_tok_s", "batch_decode_tok_s")}
    ref = {k: median(llama, k) for k in ("prefill_tok_s", "decode_tok_s")}
    weight_bytes = simd[0]["weight_bytes_per_token"]
    result = {
        "model": os.path.basename(args.model),
        "threads": args.threads,
        "numerics": args.numerics,
        "kernels": simd[0]["kernels"],
        "prompt_tokens": args.prompt_tokens,
        "decode_steps": args.decode_steps,
        "batch": args.batch,
        "rounds": args.rounds,
        "ours": ours,
        "llama_cpp": ref,
        "bandwidth_gb_s": bw["bandwidth_gb_s"],
        "weight_bytes_per_token": weight_bytes,
        "decode_fraction_of_bandwidth":
            weight_bytes * ours["decode_tok_s"] / (bw["bandwidth_gb_s"] * 1e9),
        "ratios": {
            "decode_b1_vs_llama_cpp": ours["decode_tok_s"] / ref["decode_tok_s"],
            "prefill_vs_llama_cpp": ours["prefill_tok_s"] / ref["prefill_tok_s"],
            "batch_decode_vs_our_b1": ours["batch_decode_tok_s"] / ours["decode_tok_s"],
        },
    }
    if scalar:
        result["ours_scalar"] = {k: median(scalar, k)
                                 for k in ("prefill_tok_s", "decode_tok_s", "batch_decode_tok_s")}
        result["ratios"]["simd_vs_scalar_decode"] = (ours["decode_tok_s"] /
                                                     result["ours_scalar"]["decode_tok_s"])
        result["ratios"]["simd_vs_scalar_prefill"] = (ours["prefill_tok_s"] /
                                                      result["ours_scalar"]["prefill_tok_s"])
    # Ratios within each round (ours and llama.cpp ran seconds apart, under the same load),
    # and their medians: steadier than a ratio of medians when the machine is shared.
    result["per_round"] = [
        {"decode_b1_vs_llama_cpp": o["decode_tok_s"] / l["decode_tok_s"],
         "prefill_vs_llama_cpp": o["prefill_tok_s"] / l["prefill_tok_s"],
         "batch_decode_vs_our_b1": o["batch_decode_tok_s"] / o["decode_tok_s"],
         "ours": {k: o[k] for k in ("prefill_tok_s", "decode_tok_s", "batch_decode_tok_s")},
         "llama_cpp": l}
        for o, l in zip(simd, llama)]
    result["median_of_round_ratios"] = {
        k: statistics.median(r[k] for r in result["per_round"])
        for k in ("decode_b1_vs_llama_cpp", "prefill_vs_llama_cpp", "batch_decode_vs_our_b1")}
    goals = result["ratios"]
    result["goals_met"] = {
        "decode_b1 >= 1.0x llama.cpp": goals["decode_b1_vs_llama_cpp"] >= 1.0,
        "prefill >= 1.0x llama.cpp": goals["prefill_vs_llama_cpp"] >= 1.0,
        f"batch{args.batch} aggregate >= 4x our b1": goals["batch_decode_vs_our_b1"] >= 4.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
