#!/usr/bin/env bash
# Three replicator processes on loopback commit records; the leader is killed with SIGKILL;
# the other two elect a new leader and keep committing. Then: every record any node was told
# is committed (including the dead leader's) is in both survivors' journals, and the two
# journals are identical.
set -u
node="$1"
dir=$(mktemp -d)
trap 'kill -9 ${pids[@]} 2>/dev/null; rm -rf "$dir"' EXIT
fail=0
pids=()
for id in 1 2 3; do
  "$node" --id $id --nodes 3 --dir "$dir" --run-ms 14000 > "$dir/node$id.log" 2>&1 &
  pids+=($!)
done

leader_of() { grep -h "^ROLE leader" "$dir"/node*.log | tail -1 | awk '{print $4}'; }
acks() { grep -h "^ACK" "$dir"/node*.log | wc -l; }

# Wait for a leader with a few commits.
for _ in $(seq 100); do
  [ "$(acks)" -ge 5 ] && break
  sleep 0.1
done
first=$(grep -l "^ACK" "$dir"/node*.log | head -1 | sed 's/.*node\([0-9]\).log/\1/')
[ -n "$first" ] || { echo "FAIL: no record committed within 10 s"; cat "$dir"/node*.log; exit 1; }
echo "leader is node $first after $(acks) commits; killing it"
kill -9 "${pids[$((first - 1))]}"
acked_before=$(acks)

# The survivors elect a new leader that commits more records.
second=""
for _ in $(seq 100); do
  second=$(grep -l "^ACK" "$dir"/node*.log | sed 's/.*node\([0-9]\).log/\1/' | grep -v "^$first$" | head -1)
  [ -n "$second" ] && [ "$(grep -c "^ACK" "$dir/node$second.log")" -ge 5 ] && break
  sleep 0.1
done
[ -n "$second" ] || { echo "FAIL: no new leader committed after the kill"; fail=1; }
echo "node $second took over; $(( $(acks) - acked_before )) commits since the kill"

for i in 0 1 2; do
  [ $((i + 1)) -eq "$first" ] && continue
  wait "${pids[$i]}" || { echo "FAIL: node $((i + 1)) exited non-zero"; fail=1; }
done

survivors=()
for id in 1 2 3; do [ "$id" -ne "$first" ] && survivors+=($id); done
a="$dir/node${survivors[0]}.applied"
b="$dir/node${survivors[1]}.applied"
# A survivor may stop a record or two earlier than the other; the shorter is a prefix.
na=$(wc -l < "$a"); nb=$(wc -l < "$b")
n=$(( na < nb ? na : nb ))
if ! cmp -s <(head -n "$n" "$a") <(head -n "$n" "$b"); then
  echo "FAIL: survivors' journals differ"; diff <(head -n "$n" "$a") <(head -n "$n" "$b") | head; fail=1
fi
# RPO 0: every acknowledged record, the dead leader's included, is in each survivor's journal
# (up to where that survivor stopped applying).
missing=0
for f in "$a" "$b"; do
  last=$(tail -1 "$f" | awk '{print $1}')
  while read -r _ index payload; do
    [ "$index" -le "${last:-0}" ] || continue
    grep -qx "$index $payload" "$f" || {
      echo "FAIL: acknowledged record $payload at $index is missing from $(basename "$f")"
      missing=$((missing + 1)); }
  done < <(grep -h "^ACK" "$dir"/node*.log)
done
[ $missing -eq 0 ] || fail=1
echo "$(acks) records acknowledged, survivors applied $na and $nb"
[ $fail -eq 0 ] && echo "replicator kill-the-leader: all checks passed"
exit $fail
