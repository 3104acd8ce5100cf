#!/usr/bin/env bash
# bastion-run as a person or a script uses it, on the real model: the chat answer to "What is
# the capital of France?" says Paris; --json gives a parseable result; bad input is refused with
# exit 2 and a message naming the problem. Skips (77) when the model is not fetched.
set -u
run="$1"
model="${BASTION_MODEL_CACHE:-$HOME/.cache/bastion/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$model" ]; then
  echo "SKIP: $model not found (run scripts/fetch-model)"
  exit 77
fi
fail=0
out=$("$run" --model "$model" --json --max-tokens 40 --prompt "What is the capital of France?" 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: chat run exited $rc"; fail=1; }
python3 - "$out" <<'PY' || fail=1
import json, sys
r = json.loads(sys.argv[1].strip().splitlines()[-1])
assert "Paris" in r["text"], f"answer does not say Paris: {r['text']!r}"
assert r["finish_reason"] == "stop", r
assert r["prompt_tokens"] > 10 and 0 < r["completion_tokens"] <= 40, r
print("chat answer:", r["text"])
PY

out=$("$run" --model "$model" --raw --max-tokens 8 --prompt "The quick brown fox" --json 2>&1); rc=$?
[ $rc -eq 0 ] || { echo "FAIL: raw run exited $rc: $out"; fail=1; }
grep -q '"finish_reason":"length"' <<<"$out" || { echo "FAIL: raw run did not stop at max tokens: $out"; fail=1; }

out=$("$run" --model /no/such/model.gguf --prompt hi 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: missing model exited $rc"; fail=1; }
grep -q "/no/such/model.gguf" <<<"$out" || { echo "FAIL: missing model not named: $out"; fail=1; }

out=$("$run" --model "$model" --prompt hi --top-p 0 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: top-p 0 exited $rc"; fail=1; }
grep -qi "top_p" <<<"$out" || { echo "FAIL: bad top-p not named: $out"; fail=1; }

out=$("$run" --model "$model" 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: no prompt exited $rc"; fail=1; }
[ $fail -eq 0 ] && echo "bastion-run CLI: all checks passed"
exit $fail
