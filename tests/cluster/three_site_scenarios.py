"""Three real bastion-node processes (prod, dr-local, dr-remote) under a client load that records
every outcome it saw, then a Jepsen-style check of those outcomes against the final journals
(issue 7). One scenario per run:

  kill9       kill -9 of prod; the survivors take over; prod restarts (failback) and gets
              leadership back by the preference rule; then a switchover to dr-local and one back
              to prod with the bastion CLI
  sigstop     SIGSTOP of prod past the election timeout, then SIGCONT: the deposed prod must not
              release anything it cannot prove committed
  cut         prod <-> dr-local cut: prod stays leader through dr-remote, dr-local falls behind
              and prod's journal_peer_lagging / journal_peer_silent alerts fire (bastion status
              shows them), nothing is lost; healed, dr-local catches up and the alerts end
  delay       the remote links delayed by 50 ms each way: commits go on through dr-local and no
              alert fires; the admin membership endpoint refuses bad requests
  promote     both city sites killed: no majority, no service; forced promotion of dr-remote
              (bastion promote), which then serves alone and has every acknowledged answer;
              then failback: prod and dr-local come back through bastion rejoin + add-site,
              prod leads again by the preference rule, all three vote

  three_site_scenarios.py SCENARIO --build BUILD_DIR [--base-port N] [--keep]

The check (check_history): every acknowledged answer has a committed completion record with the
same SM3 digest, site and epoch; no request id has two committed completions with different
digests; every acknowledged answer's admission record committed; no two sites were ever ready
in the same epoch, and every answer came from a site in an epoch that site had opened.
Committed = present in a majority of the final journals (a snapshot covers only committed
entries). Skips (77) when the model or the venv is missing.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "cluster", "clients"))
from three_sites import (ADMIN_KEY, SITES, check_history, cluster, failure,  # noqa: E402
                         finish_load, read_records, require)

MODEL = os.path.expanduser(os.environ.get(
    "BASTION_MODEL", "~/.cache/bastion/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def kill_ms(c, action, site):
    t = int(time.time() * 1000)
    c.sh(action, c.dir, site)
    return t


def first_answer_after(records, t_ms, exclude_site=None):
    after = [r for r in records if "digest" in r and r["done"] * 1000 > t_ms
             and r["site"] != exclude_site]
    return min(after, key=lambda r: r["done"]) if after else None


def scenario_kill9(c):
    proc, out = c.load(30)
    time.sleep(8)
    t_kill = kill_ms(c, "kill", "prod")
    new = c.wait_ready({"dr-local", "dr-remote"}, 30)
    records = finish_load(proc, out)
    first = first_answer_after(records, t_kill, "prod")
    require(first is not None, "no answer after the kill")
    print(f"kill9: {new} took over; RTO {first['done'] * 1000 - t_kill:.0f} ms "
          f"(first answer by {first['site']} epoch {first['epoch']})")
    # The operator's view from a survivor: prod down (exit 1), a survivor the ready primary
    # (the first one to lead may be handing over to dr-local, the preferred one: asked again
    # until the hand-over is done), each survivor's worker healthy.
    deadline = time.time() + 15
    while True:
        r = c.cli("health", "--json", site="dr-local", check=False, timeout=30)
        seen = {h["site"]: h for h in map(json.loads, r.stdout.splitlines())}
        ready = [s for s in ("dr-local", "dr-remote") if seen[s].get("ready")]
        if len(ready) == 1 or time.time() > deadline:
            break
        time.sleep(0.5)
    require(len(ready) == 1, f"bastion health sees no single ready primary: {seen}")
    require(r.returncode == 1, f"bastion health exited {r.returncode} with prod down: {r.stdout}")
    require("error" in seen["prod"], f"bastion health does not say prod is down: {seen['prod']}")
    for site in ("dr-local", "dr-remote"):
        require(seen[site]["alive"] and seen[site]["workers"] and
                all(w["healthy"] for w in seen[site]["workers"]),
                f"bastion health on {site}: {seen[site]}")
    print(f"kill9: bastion health: prod {seen['prod']['error']}; {ready[0]} ready")
    # Failback: prod returns as a follower, catches up and leadership comes back to it.
    c.sh("start", c.dir, "prod")
    t0 = time.time()
    c.wait_ready({"prod"}, 90)
    print(f"failback: prod is the ready primary again {time.time() - t0:.1f} s after restarting")
    proc, out2 = c.load(25, prefix="switch")
    time.sleep(4)
    r = c.cli("switchover", "--to", "dr-local", "--wait-s", "40", timeout=60)
    print("switchover:", r.stdout.strip().replace("\n", " | "))
    time.sleep(5)  # past the preferred-site hold: prod, caught up, must not take it back
    require(c.ready_sites() == {"dr-local"}, f"dr-local did not keep leadership: {c.status()}")
    r = c.cli("switchover", "--to", "prod", "--wait-s", "40", timeout=60)
    print("switchover back:", r.stdout.strip().replace("\n", " | "))
    records += finish_load(proc, out2)
    sites = {x["site"] for x in records if "digest" in x and x["id"].startswith("switch")}
    require({"prod", "dr-local"} <= sites, f"switch load answered only by {sites}")
    return records, SITES


def scenario_sigstop(c):
    proc, out = c.load(30)
    time.sleep(8)
    t_stop = kill_ms(c, "stop", "prod")
    new = c.wait_ready({"dr-local", "dr-remote"}, 30)
    time.sleep(3)
    t_cont = kill_ms(c, "cont", "prod")
    records = finish_load(proc, out)
    # The deposed prod may finish what it had committed; anything it released after SIGCONT
    # must carry an epoch it still led in and be committed (check_history proves the latter).
    old_epochs = {e for p, e, _, ms in c.site_lines("prod") if p == "ready" and ms < t_stop}
    late = [r for r in records if "digest" in r and r["site"] == "prod"
            and r["done"] * 1000 > t_cont + 2000]
    for r in late:
        require(r["epoch"] not in old_epochs,
                f"{r['id']}: released by prod in its old epoch {r['epoch']} 2 s after SIGCONT")
    first = first_answer_after(records, t_stop, "prod")
    require(first is not None, "no answer after prod stopped")
    print(f"sigstop: {new} took over; first answer {first['done'] * 1000 - t_stop:.0f} ms "
          f"after SIGSTOP; {len(late)} answers from prod after it resumed, none in an old epoch")
    return records, SITES


def scenario_cut(c):
    proc, out = c.load(25)
    time.sleep(5)
    c.cli("fault", "--link", "prod,dr-local", "--cut")
    t_cut = time.time()
    time.sleep(8)
    st = c.status()
    require(st["prod"].get("ready"), f"prod lost leadership over a cut to dr-local: {st}")
    for site in ("prod", "dr-local"):
        require(st[site]["journal"]["frames_fault_outgoing_dropped"] > 0,
                f"{site} dropped no frame over the cut link: {st[site]['journal']}")
    prod_peers = {p["site"]: p for p in st["prod"]["journal"]["peers"]}
    behind = prod_peers["dr-local"]["lag"]
    require(behind > 0, f"dr-local shows no lag while cut off: {prod_peers}")
    require(prod_peers["dr-remote"]["lag"] < behind,
            f"dr-remote is not the one keeping up: {prod_peers}")
    print(f"cut: prod still leads; dr-local is {behind} entries, "
          f"{prod_peers['dr-local'].get('lag_ms')} ms behind, dr-remote "
          f"{prod_peers['dr-remote']['lag']} entries, {prod_peers['dr-remote'].get('lag_ms')} ms")
    # The alert fires on the leader (lag_alert_ms 5 s, silence 3 election timeouts: the cut
    # is 8 s old) and the operator sees it in `bastion status`.
    alerts = st["prod"]["journal"].get("alerts", [])
    require(any(a.startswith("journal_peer_lagging peer 2 (dr-local)") for a in alerts),
            f"no lag alert for dr-local on prod: {alerts}")
    require(not any("dr-remote" in a for a in alerts), f"an alert names dr-remote: {alerts}")
    shown = c.cli("status").stdout
    require("ALERT on prod: journal_peer_lagging peer 2 (dr-local)" in shown,
            f"bastion status shows no alert: {shown}")
    print("cut: " + "; ".join(alerts))
    during = [r for r in read_records(out) if "digest" in r and r["done"] > t_cut + 1]
    require(len(during) > 0, "nothing was answered while the link was cut")
    c.cli("fault", "--link", "prod,dr-local", "--heal")
    records = finish_load(proc, out)
    deadline = time.time() + 30
    while time.time() < deadline:
        peers = {p["site"]: p for p in c.status()["prod"]["journal"]["peers"]}
        if peers["dr-local"]["lag"] == 0:
            break
        time.sleep(0.5)
    require(peers["dr-local"]["lag"] == 0, f"dr-local did not catch up after the heal: {peers}")
    deadline = time.time() + 10
    while c.status()["prod"]["journal"].get("alerts") and time.time() < deadline:
        time.sleep(0.5)
    alerts = c.status()["prod"]["journal"].get("alerts")
    require(not alerts, f"the alerts did not end after the heal: {alerts}")
    print(f"cut: healed, dr-local caught up; {len(during)} answers while cut")
    return records, SITES


def admin_call(c, site, method, path, body):
    req = urllib.request.Request(f"http://{c.http(site)}/admin/v1/{path}", method=method,
                                 data=body if body is None or isinstance(body, bytes)
                                 else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def admin_refusals(c):
    """The membership endpoint against bad requests: each refused with a reason, nothing moves;
    adding a site that already votes answers at once."""
    cases = [("GET", None, 400), ("POST", b"not json", 400), ("POST", {"add": 7}, 400),
             ("POST", {"add": "atlantis"}, 400), ("POST", {"add": "prod"}, 400)]
    for method, body, want in cases:
        status, j = admin_call(c, "prod", method, "members", body)
        require(status == want and "message" in j.get("error", {}),
                f"members {method} {body!r}: HTTP {status} {j}")
    status, j = admin_call(c, "dr-local", "POST", "members", {"add": "dr-remote"})
    require(status == 409 and "not_leader" in j["error"]["message"],
            f"a follower added a member: HTTP {status} {j}")
    status, j = admin_call(c, "prod", "POST", "members", {"add": "dr-local"})
    require(status == 200 and j.get("voters") == 3, f"re-adding a voter: HTTP {status} {j}")
    print("delay: the membership endpoint refused 6 bad requests and re-adding a voter changed "
          "nothing")


def scenario_delay(c):
    # Baseline and delayed load back to back on the same cluster.
    proc, out = c.load(10, prefix="base")
    base = finish_load(proc, out)
    c.cli("fault", "--link", "prod,dr-remote", "--delay-ms", "50")
    c.cli("fault", "--link", "dr-local,dr-remote", "--delay-ms", "50")
    st = c.status()
    require(any(f["delay_ms"] == 50 for f in st["prod"]["faults"]), f"no delay in force: {st}")
    proc, out = c.load(15, prefix="delayed")
    delayed = finish_load(proc, out)
    st = c.status()
    require({x for x, j in st.items() if j.get("ready")} == {"prod"},
            "leadership moved under a 50 ms remote delay")
    # The delay really held frames back (the switch is not merely configured).
    for site in ("prod", "dr-remote"):
        require(st[site]["journal"]["frames_fault_delayed"] > 0,
                f"{site} delayed no frame: {st[site]['journal']}")
    admin_refusals(c)
    # A 50 ms link is the remote site working as built: no alert may fire for it.
    require(not st["prod"]["journal"].get("alerts"),
            f"an alert fired over a 50 ms delay: {st['prod']['journal'].get('alerts')}")

    def p50(rs):
        xs = sorted(r["done"] - r["sent"] for r in rs if "digest" in r)
        return 1000 * xs[len(xs) // 2] if xs else float("nan")

    print(f"delay: latency p50 {p50(base):.0f} ms without, {p50(delayed):.0f} ms with the 50 ms "
          f"remote links (commits go through dr-local); "
          f"{sum(1 for r in delayed if 'digest' in r)} answered, "
          f"{sum(1 for r in delayed if 'digest' not in r)} failed")
    require(all("digest" in r for r in delayed), "requests failed under the remote delay")
    return base + delayed, SITES


def scenario_promote(c):
    proc, out = c.load(10)
    records = finish_load(proc, out)
    time.sleep(1)  # the last commits reach dr-remote (what it lacks at the kill is the loss)
    before = c.status()
    t_kill = kill_ms(c, "kill", "prod")
    c.sh("kill", c.dir, "dr-local")
    time.sleep(3)
    require(not c.ready_sites(), "a site is ready without a majority")
    # The operator: stop dr-remote, attest prod and dr-local are fenced, promote, start.
    c.sh("kill", c.dir, "dr-remote")  # a hung survivor can only be killed
    time.sleep(0.5)
    r = c.cli("promote", "--fenced", "prod,dr-local", "--yes", site="dr-remote")
    require("Possible loss window" in r.stdout, f"promote printed no loss window: {r.stdout}")
    print("promote:", r.stdout.strip().splitlines()[-2])
    c.sh("start", c.dir, "dr-remote")
    c.wait_ready({"dr-remote"}, 60)
    t_ready = time.time() * 1000
    print(f"promote: dr-remote serves alone {t_ready - t_kill:.0f} ms after the city sites "
          f"died (including the operator's steps)")
    proc, out = c.load(6, sites=["dr-remote"], prefix="after")
    after = finish_load(proc, out)
    require(any("digest" in r for r in after), "dr-remote answered nothing after promotion")
    lagging = before.get("dr-remote", {}).get("journal", {})
    print(f"promote: dr-remote had applied {lagging.get('last_applied')} of "
          f"{before['prod']['journal']['commit_index']} before the kill")
    # Failback: the fenced city sites come back through `bastion rejoin` (old journal moved
    # aside, an empty one that cannot campaign) and `bastion add-site` (the primary catches
    # them up and makes them voters); the preference rule then gives prod leadership back.
    t_back = time.time()
    for site in ("prod", "dr-local"):
        r = c.cli("rejoin", "--yes", site=site)
        require("Old journal moved to" in r.stdout, f"rejoin {site} moved nothing: {r.stdout}")
        c.sh("start", c.dir, site)
        r = c.cli("add-site", "--site", site, "--wait-s", "60", site=site)
        print(f"promote: add-site {site}: " + r.stdout.strip().splitlines()[-1])
        if site == "prod":
            c.wait_ready({"prod"}, 60)
            print(f"promote: prod leads again {time.time() - t_back:.1f} s after its rejoin began")
    st = c.status()
    voters = {p["site"] for p in st["prod"]["journal"]["peers"]}
    require(voters == {"dr-local", "dr-remote"}, f"prod's voting peers after failback: {voters}")
    proc, out = c.load(6, prefix="back")
    back = finish_load(proc, out)
    require(any("digest" in r and r.get("site") == "prod" for r in back),
            "prod answered nothing after the failback")
    print(f"promote: failback done, {sum(1 for r in back if 'digest' in r)} answered by the "
          f"three-voter cluster")
    return records + after + back, SITES


SCENARIOS = {"kill9": scenario_kill9, "sigstop": scenario_sigstop, "cut": scenario_cut,
             "delay": scenario_delay, "promote": scenario_promote}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--build", required=True)
    p.add_argument("--base-port", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    if not os.path.exists(MODEL):
        print(f"SKIP: the model {MODEL} is not fetched (scripts/fetch-model)")
        return 77
    base = args.base_port or 21000 + 400 * sorted(SCENARIOS).index(args.scenario)
    work = tempfile.mkdtemp(prefix=f"bastion-{args.scenario}-")
    c = cluster(os.path.abspath(args.build), base, work)
    ok = False
    try:
        c.up()
        records, survivors = SCENARIOS[args.scenario](c)
        c.down()
        print(check_history(c, records, [c.journal(s) for s in survivors]))
        ok = True
        print(f"{args.scenario}: PASS")
        return 0
    except failure as e:
        print(f"{args.scenario}: FAIL: {e}")
        return 1
    finally:
        c.down()
        if not ok:
            for s in SITES:
                log = os.path.join(work, f"{s}.log")
                if os.path.exists(log):
                    print(f"--- {s}.log (last 15 lines)")
                    print("".join(open(log, errors="replace").readlines()[-15:]))
        if ok and not args.keep:
            subprocess.run(["rm", "-rf", work])
        else:
            print(f"work directory kept: {work}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
