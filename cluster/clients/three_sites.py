"""Drives the three sites of cluster/three-site from Python: start them, ask their status through
the bastion CLI, run the recording client load (load.py), read the journals back, and check a
recorded history against them Jepsen-style. Shared by tests/cluster/three_site_scenarios.py and
bench/failover_bench.py.
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITES = ["prod", "dr-local", "dr-remote"]
ADMIN_KEY = "bastion-admin-key"


class failure(Exception):
    pass


def require(cond, what):
    if not cond:
        raise failure(what)


class cluster:
    """The three sites of cluster/three-site in `workdir`, ports from `base`."""

    def __init__(self, build, base, workdir):
        self.build = build
        self.base = base
        self.dir = workdir
        self.env = dict(os.environ, BASTION_NODE=os.path.join(build, "cluster", "bastion-node"),
                        BASTION_CLI=os.path.join(build, "cluster", "bastion"),
                        BASTION_ADMIN_KEY=ADMIN_KEY)
        self.script = os.path.join(ROOT, "cluster", "three-site")

    def sh(self, *args, site=None, check=True, timeout=120):
        env = dict(self.env)
        if site:
            env["BASTION_SITE"] = site
        r = subprocess.run([self.script, *args], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise failure(f"three-site {' '.join(args)} failed ({r.returncode}): "
                          f"{r.stdout}{r.stderr}")
        return r

    def cli(self, *args, site=None, check=True, timeout=120):
        return self.sh("cli", self.dir, *args, site=site, check=check, timeout=timeout)

    def http(self, site):
        return f"127.0.0.1:{self.base + 80 + 100 * SITES.index(site)}"

    def sites_arg(self, sites=SITES):
        return ",".join(f"{s}={self.http(s)}" for s in sites)

    def up(self):
        self.sh("up", self.dir, str(self.base))
        self.wait_ready({"prod"}, 180)

    def status(self):
        r = self.cli("status", "--json", check=False, timeout=30)
        out = {}
        for line in r.stdout.splitlines():
            j = json.loads(line)
            out[j["site"]] = j
        return out

    def ready_sites(self):
        return {s for s, j in self.status().items() if j.get("ready")}

    def wait_ready(self, allowed, limit_s):
        """Waits until exactly one site in `allowed` is the ready primary; returns it."""
        deadline = time.time() + limit_s
        while time.time() < deadline:
            ready = self.ready_sites()
            if len(ready) == 1 and ready <= set(allowed):
                return next(iter(ready))
            time.sleep(0.3)
        raise failure(f"no site of {sorted(allowed)} became the ready primary in {limit_s} s; "
                      f"status: {json.dumps(self.status())}")

    def load(self, seconds, clients=2, sites=SITES, prefix="load"):
        out = os.path.join(self.dir, f"{prefix}.jsonl")
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "cluster", "clients", "load.py"),
                              "run", "--sites", self.sites_arg(sites), "--seconds", str(seconds),
                              "--clients", str(clients), "--prefix", prefix, "--out", out,
                              "--give-up", "40"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p, out

    def down(self):
        self.sh("down", self.dir, check=False)

    def journal(self, site):
        r = subprocess.run([self.env["BASTION_CLI"], "journal", "--dir",
                            os.path.join(self.dir, f"{site}.journal")],
                           capture_output=True, text=True, timeout=60)
        require(r.returncode == 0, f"bastion journal {site}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines()]

    def site_lines(self, site):
        """(phase, epoch, term, ms) from the node's SITE lines, over all its incarnations."""
        out = []
        for line in open(os.path.join(self.dir, f"{site}.log"), errors="replace"):
            m = re.match(r"SITE (\S+) epoch (\d+) term (\d+) leader \S+ (\d+)", line)
            if m:
                out.append((m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))))
        return out


def read_records(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def finish_load(proc, out):
    text, _ = proc.communicate(timeout=300)
    require(proc.returncode == 0, f"load client failed: {text}")
    return read_records(out)


def committed_view(journals):
    """Entries present, with the same term, in a majority of `journals`, plus what snapshots
    cover. Returns (completions: id -> list of records, admissions: set of ids)."""
    need = len(journals) // 2 + 1
    seen = {}
    snap_completions = {}
    for j in journals:
        for e in j:
            if e["kind"] == "snapshot":
                for c in e["completions"]:
                    snap_completions[c["request_id"]] = c
            elif "index" in e:
                key = (e["index"], e["term"], e["kind"], e.get("request_id"))
                seen.setdefault(key, []).append(e)
    completions, admissions = {}, set()
    for key, copies in seen.items():
        if len(copies) < need:
            continue
        e = copies[0]
        if e["kind"] == "completion":
            completions.setdefault(e["request_id"], []).append(e)
        elif e["kind"] == "admission":
            admissions.add(e["request_id"])
    for rid, c in snap_completions.items():
        if rid not in completions:
            completions[rid] = [{"request_id": rid, "digest": c["digest"], "from_snapshot": True}]
            admissions.add(rid)  # the admission is older than the completion: covered too
    return completions, admissions


def history_problems(c, records, journals):
    """The Jepsen-style check of `records` against the final `journals`: (violations, lost,
    summary) where lost counts the acknowledged answers with no committed completion (the
    measured RPO) and summary describes the history."""
    completions, admissions = committed_view(journals)
    acked = [r for r in records if "digest" in r]
    problems = []
    lost = 0
    by_id = {}
    for r in acked:
        by_id.setdefault(r["id"], set()).add(r["sm3"])
    for rid, digests in by_id.items():
        if len(digests) > 1:
            problems.append(f"{rid}: acknowledged twice with different results")
    # A cancellation is not a result (nobody who stayed saw it, and a retry runs again):
    # results are the other completions, and each id has at most one.
    completions = {rid: [x for x in cs if not x.get("cancelled")]
                   for rid, cs in completions.items()}
    for rid, cs in completions.items():
        if len({x.get("digest") for x in cs}) > 1:
            problems.append(f"{rid}: committed twice with different results")
    for r in acked:
        cs = completions.get(r["id"])
        if not cs:
            lost += 1
            problems.append(f"{r['id']}: acknowledged by {r['site']}/{r['epoch']} but no "
                            f"committed completion (lost)")
            continue
        x = cs[0]
        if x.get("digest") != r["sm3"]:
            problems.append(f"{r['id']}: committed digest differs from the acknowledged one")
        if not x.get("from_snapshot") and (x["site"], x["epoch"]) != (r["site"], r["epoch"]):
            problems.append(f"{r['id']}: released by {r['site']}/{r['epoch']} but committed as "
                            f"{x['site']}/{x['epoch']}")
        if r["id"] not in admissions:
            problems.append(f"{r['id']}: its admission record is not committed")
    # Never two primaries: an epoch is opened by one site only, and answers come from a site
    # in an epoch that site opened.
    opened = {}
    for s in SITES:
        for phase, epoch, _, _ in c.site_lines(s):
            if phase == "ready":
                if epoch in opened and opened[epoch] != s:
                    problems.append(f"epoch {epoch} opened by {opened[epoch]} and {s}")
                opened[epoch] = s
    for r in acked:
        if opened.get(r["epoch"]) != r["site"]:
            problems.append(f"{r['id']}: released by {r['site']} in epoch {r['epoch']}, which "
                            f"that site never opened")
    summary = (f"history: {len(acked)} acknowledged, {len(records) - len(acked)} failed, "
               f"{len(completions)} committed completions, epochs {sorted(opened)}")
    return problems, lost, summary


def check_history(c, records, journals, expect_acked_min=1):
    """history_problems, as a check: returns a summary line, raises failure on a violation."""
    acked = sum(1 for r in records if "digest" in r)
    require(acked >= expect_acked_min,
            f"only {acked} answers acknowledged (expected at least {expect_acked_min})")
    problems, _, summary = history_problems(c, records, journals)
    if problems:
        raise failure("history check: " + "; ".join(problems[:15]) +
                      (f" (+{len(problems) - 15} more)" if len(problems) > 15 else ""))
    return summary + ": no loss, no double release, one primary per epoch"
