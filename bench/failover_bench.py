"""The failover bench (issue 7): three sites on this machine serving SmolLM2 under a steady load;
prod is killed with kill -9 again and again (restarted and given leadership back by the
preference rule between runs), and each run's times are taken from the sites' SITE lines and
the clients' records:

  detection    kill -> a survivor's replica starts an election (its term rises)
  election     kill -> a survivor leads (its first leader phase; lines are sampled every 20 ms)
  readiness    kill -> the new primary is ready (epoch committed, models checked, canary passed)
  first answer kill -> the first answer released by the new primary
  RTO          = first answer (kill to the first successful answer at the new primary)
  RPO          acknowledged answers with no committed completion in the final journals

At the end the whole history goes through the Jepsen-style check (cluster/clients/
three_sites.py: no acknowledged answer lost, none released twice with different results, one
primary per epoch). Goals: RTO p99 under 5 s, RPO 0, never two primaries.

  bench/failover_bench.py [--runs 20] [--long] [--build build] [--base-port 23000]
                          [--clients 2] [--election-ms 1000] [--heartbeat-ms 100]

--long runs 60. The machine's load average is printed with the results: three nodes, the load
and the bench share its cores.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "cluster", "clients"))
from three_sites import (SITES, cluster, finish_load, history_problems,  # noqa: E402
                         require)


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def first_line_after(c, sites, t_ms, pred):
    best = None
    for s in sites:
        for phase, epoch, term, ms in c.site_lines(s):
            if ms > t_ms and pred(phase, epoch, term) and (best is None or ms < best[0]):
                best = (ms, s, phase, epoch, term)
    return best


def one_run(c, i, args):
    status = c.status()
    term_before = status["prod"]["journal"]["term"]
    proc, out = c.load(args.load_s, clients=args.clients, prefix=f"run{i}")
    time.sleep(args.kill_after_s)
    t_kill = int(time.time() * 1000)
    c.sh("kill", c.dir, "prod")
    survivors = ["dr-local", "dr-remote"]
    c.wait_ready(set(survivors), 30)
    records = finish_load(proc, out)
    detect = first_line_after(c, survivors, t_kill, lambda p, e, t: t > term_before)
    # The SITE lines are sampled every 20 ms: a fast leader may skip committing_epoch there.
    elect = first_line_after(c, survivors, t_kill, lambda p, e, t: p != "follower")
    ready = first_line_after(c, survivors, t_kill, lambda p, e, t: p == "ready")
    answers = [r for r in records if "digest" in r and r["done"] * 1000 > t_kill
               and r["site"] != "prod"]
    first = min(answers, key=lambda r: r["done"]) if answers else None
    row = {
        "detection": detect[0] - t_kill if detect else None,
        "election": elect[0] - t_kill if elect else None,
        "readiness": ready[0] - t_kill if ready else None,
        "rto": first["done"] * 1000 - t_kill if first else None,
        "new_primary": ready[1] if ready else "?",
        "acked": sum(1 for r in records if "digest" in r),
        "failed": sum(1 for r in records if "digest" not in r),
    }
    # Failback before the next run: prod rejoins and the preference rule hands it leadership.
    c.sh("start", c.dir, "prod")
    c.wait_ready({"prod"}, 90)
    return row, records


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--long", action="store_true")
    p.add_argument("--build", default="build")
    p.add_argument("--base-port", type=int, default=23000)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--load-s", type=float, default=10)
    p.add_argument("--kill-after-s", type=float, default=4)
    p.add_argument("--election-ms", type=int, default=1000)
    p.add_argument("--heartbeat-ms", type=int, default=100)
    args = p.parse_args()
    runs = 60 if args.long else args.runs
    os.environ["BASTION_ELECTION_MS"] = str(args.election_ms)
    os.environ["BASTION_HEARTBEAT_MS"] = str(args.heartbeat_ms)
    print("command: " + " ".join([sys.executable] + sys.argv))
    print(f"settings: runs {runs}, clients {args.clients}, load {args.load_s} s per run, kill "
          f"{args.kill_after_s} s in, election timeout {args.election_ms} ms, heartbeat "
          f"{args.heartbeat_ms} ms, 3 sites on loopback, SmolLM2 Q4_1 on one CPU worker each")
    work = tempfile.mkdtemp(prefix="bastion-failover-bench-")
    c = cluster(os.path.abspath(args.build), args.base_port, work)
    rows, history = [], []
    try:
        c.up()
        time.sleep(2)
        for i in range(runs):
            row, records = one_run(c, i, args)
            rows.append(row)
            history += records
            print(f"run {i + 1:3d}: detection {row['detection']} ms, election "
                  f"{row['election']} ms, ready {row['readiness']} ms, RTO {row['rto']:.0f} ms "
                  f"({row['new_primary']}), {row['acked']} acked, {row['failed']} failed",
                  flush=True)
        c.down()
        problems, lost, summary = history_problems(c, history, [c.journal(s) for s in SITES])
    finally:
        c.down()
    print()
    print(f"{'metric':14s} {'p50':>8s} {'p99':>8s} {'max':>8s}   (ms after kill -9, {runs} runs)")
    for k in ("detection", "election", "readiness", "rto"):
        xs = [r[k] for r in rows if r[k] is not None]
        require(len(xs) == len(rows), f"{k} missing in {len(rows) - len(xs)} runs")
        print(f"{k:14s} {percentile(xs, 50):8.0f} {percentile(xs, 99):8.0f} {max(xs):8.0f}")
    print(f"RPO: {lost} acknowledged answers lost of "
          f"{sum(1 for r in history if 'digest' in r)}; "
          f"{sum(r['failed'] for r in rows)} requests failed (given up) in all")
    print(summary + (": no violation" if not problems else
                     f": {len(problems)} VIOLATIONS, first: " + "; ".join(problems[:5])))
    rto_p99 = percentile([r["rto"] for r in rows], 99)
    print(f"goals: RTO p99 {rto_p99:.0f} ms < 5000 ms: {'met' if rto_p99 < 5000 else 'NOT met'}; "
          f"RPO 0: {'met' if not lost else 'NOT met'}; no violation of the history check: "
          f"{'met' if not problems else 'NOT met'}")
    print(f"load average: {open('/proc/loadavg').read().split()[0:3]}")
    print(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
