#!/usr/bin/env bash
# Three replicator processes (file stores) on loopback commit records; the leader is killed
# with SIGKILL; the other two elect a new leader and keep committing; the killed node restarts
# from its files and catches up. Then: the journals agree (each a prefix of the longest),
# every record any node was told is committed (the dead leader's included) is in every
# journal that got that far, and the restarted node caught up past everything committed
# while it was down.
set -u
node="$1"
dir=$(mktemp -d)
pids=()
trap 'kill -9 ${pids[@]} 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fail=0
for id in 1 2 3; do
  "$node" --id $id --nodes 3 --dir "$dir" --run-ms 15000 > "$dir/node$id.log" 2>&1 &
  pids+=($!)
done

acks() { cat "$dir"/*.log 2>/dev/null | grep -c "^ACK"; }

# Wait for a leader with a few commits.
for _ in $(seq 150); do
  [ "$(acks)" -ge 5 ] && break
  sleep 0.1
done
first=$(grep -l "^ACK" "$dir"/node?.log | head -1 | sed 's/.*node\([0-9]\).log/\1/')
[ -n "$first" ] || { echo "FAIL: no record committed within 15 s"; tail -5 "$dir"/*.log; exit 1; }
echo "leader is node $first after $(acks) commits; killing it (SIGKILL)"
kill -9 "${pids[$((first - 1))]}"
wait "${pids[$((first - 1))]}" 2>/dev/null
acked_before=$(acks)

# The survivors elect a new leader that commits more records.
second=""
for _ in $(seq 150); do
  second=$(grep -l "^ACK" "$dir"/node?.log | sed 's/.*node\([0-9]\).log/\1/' | grep -v "^$first$" | head -1)
  [ -n "$second" ] && [ "$(grep -c "^ACK" "$dir/node$second.log")" -ge 5 ] && break
  sleep 0.1
done
[ -n "$second" ] || { echo "FAIL: no new leader committed within 15 s of the kill"; fail=1; }
echo "node $second took over; $(( $(acks) - acked_before )) commits since the kill"

# Everything committed while the old leader was down; it must catch up from its files.
down_max=$(cat "$dir"/*.log | grep "^ACK" | awk '{print $2}' | sort -n | tail -1)
"$node" --id "$first" --nodes 3 --dir "$dir" --run-ms 6000 \
  --applied "$dir/restarted.applied" > "$dir/restarted.log" 2>&1 &
pids[$((first - 1))]=$!
echo "node $first restarted from its files (committed while down: up to index $down_max)"

for i in 0 1 2; do
  wait "${pids[$i]}" || { echo "FAIL: node $((i + 1)) exited non-zero"; fail=1; }
done

journals=()
for id in 1 2 3; do [ "$id" -ne "$first" ] && journals+=("$dir/node$id.applied"); done
journals+=("$dir/restarted.applied")
longest=$(wc -l "${journals[@]}" | grep -v total | sort -n | tail -1 | awk '{print $2}')
for f in "${journals[@]}"; do
  n=$(wc -l < "$f")
  cmp -s "$f" <(head -n "$n" "$longest") || {
    echo "FAIL: $(basename "$f") is not a prefix of $(basename "$longest")"; fail=1; }
done
# RPO 0: every acknowledged record is in each journal that got as far as its index.
missing=0
for f in "${journals[@]}"; do
  last=$(tail -1 "$f" | awk '{print $1}')
  while read -r _ index payload; do
    [ "$index" -le "${last:-0}" ] || continue
    grep -qx "$index $payload" "$f" || {
      echo "FAIL: acknowledged record $payload at $index is missing from $(basename "$f")"
      missing=$((missing + 1)); }
  done < <(cat "$dir"/*.log | grep "^ACK")
done
[ $missing -eq 0 ] || fail=1
restarted_last=$(tail -1 "$dir/restarted.applied" | awk '{print $1}')
[ "${restarted_last:-0}" -ge "$down_max" ] || {
  echo "FAIL: restarted node applied only up to ${restarted_last:-nothing}, not $down_max"; fail=1; }
echo "$(acks) records acknowledged; journals: $(wc -l "${journals[@]}" | grep -v total | awk '{print $1}' | tr '\n' ' ')"
[ $fail -eq 0 ] && echo "replicator kill-the-leader: all checks passed"
exit $fail
