#!/usr/bin/env bash
# bastion-node as an operator meets it: prints its health and exits with --once; refuses a bad
# option with exit code 2 and a message naming it. $2: the fake libnvidia-ml
# (tests/kernels/device/fake_nvml.cpp), for the GPU lines without a GPU.
set -u
node="$1"
fake_nvml="$2"
fail=0
out=$("$node" --once --name cli-test --site dr-local 2>&1); rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "FAIL: --once exited $rc"; fail=1; }
grep -q "node      cli-test" <<<"$out" || { echo "FAIL: node name not printed"; fail=1; }
grep -q "site      dr-local" <<<"$out" || { echo "FAIL: site not printed"; fail=1; }
grep -q "status    healthy" <<<"$out" || { echo "FAIL: no health status"; fail=1; }

# CUDA ordinals follow NVML's PCI bus order unless the operator chose another order.
out=$(env -u CUDA_DEVICE_ORDER "$node" --once 2>&1)
grep -q "CUDA_DEVICE_ORDER was unset: set to PCI_BUS_ID" <<<"$out" ||
  { echo "FAIL: unset CUDA_DEVICE_ORDER not set to PCI_BUS_ID"; fail=1; }
out=$(CUDA_DEVICE_ORDER=FASTEST_FIRST "$node" --once 2>&1)
grep -q "warning: CUDA_DEVICE_ORDER=FASTEST_FIRST" <<<"$out" ||
  { echo "FAIL: no warning for CUDA_DEVICE_ORDER=FASTEST_FIRST"; fail=1; }
out=$(CUDA_DEVICE_ORDER=PCI_BUS_ID "$node" --once 2>&1)
! grep -q "CUDA_DEVICE_ORDER" <<<"$out" ||
  { echo "FAIL: CUDA_DEVICE_ORDER=PCI_BUS_ID was remarked on"; fail=1; }

# CUDA_VISIBLE_DEVICES renumbers worker devices within its list: said at start, only when set.
out=$(CUDA_VISIBLE_DEVICES=2,3 "$node" --once 2>&1)
grep -q "CUDA_VISIBLE_DEVICES=2,3: a gpu worker's device N is the Nth GPU in that list" <<<"$out" ||
  { echo "FAIL: CUDA_VISIBLE_DEVICES=2,3 not explained"; fail=1; }
out=$(CUDA_VISIBLE_DEVICES= "$node" --once 2>&1)
grep -q "warning: CUDA_VISIBLE_DEVICES is set but empty" <<<"$out" ||
  { echo "FAIL: no warning for an empty CUDA_VISIBLE_DEVICES"; fail=1; }
out=$(env -u CUDA_VISIBLE_DEVICES "$node" --once 2>&1)
! grep -qE "^bastion-node: (warning: )?CUDA_VISIBLE_DEVICES" <<<"$out" ||
  { echo "FAIL: an unset CUDA_VISIBLE_DEVICES was remarked on"; fail=1; }

# NVML's GPU lines carry the PCI address that ties them to the CUDA device lines.
out=$(BASTION_NVML_LIBRARY="$fake_nvml" "$node" --once 2>&1)
grep -q "gpu       0 Fake H200, PCI 0000:18:00.0, 41 C" <<<"$out" ||
  { echo "FAIL: no PCI address on NVML's GPU line"; echo "$out"; fail=1; }
grep -q "gpu       1 Fake L4, PCI 0001:af:00.0" <<<"$out" ||
  { echo "FAIL: no PCI address on the second GPU line"; fail=1; }

out=$("$node" --once --site moon 2>&1); rc=$?
echo "$out"
[ $rc -eq 2 ] || { echo "FAIL: bad site exited $rc, expected 2"; fail=1; }
grep -q "'site' = 'moon' refused" <<<"$out" || { echo "FAIL: bad site not named"; fail=1; }

out=$("$node" --no-such-flag 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "FAIL: unknown flag exited $rc, expected 2"; fail=1; }

# Served mode stops cleanly on SIGTERM.
"$node" --name served > /tmp/bastion-node-cli.$$ 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q healthy /tmp/bastion-node-cli.$$ && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
grep -q "stopped" /tmp/bastion-node-cli.$$ || { echo "FAIL: no clean stop on SIGTERM"; fail=1; }
[ $rc -eq 0 ] || { echo "FAIL: served mode exited $rc after SIGTERM"; fail=1; }
rm -f /tmp/bastion-node-cli.$$
[ $fail -eq 0 ] && echo "bastion-node CLI: all checks passed"
exit $fail
