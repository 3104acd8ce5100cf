"""Steady client load on the three sites, recording every outcome it saw, and its verifier.

  load.py run    --sites prod=127.0.0.1:18080,dr-local=...  --seconds 30 --clients 2 --out F
  load.py verify --sites ... --in F

`run` sends completions with client request ids from `clients` threads. It follows the primary
as a Bastion client should: a standby's 307 is followed to the leader, a retryable error
(not_primary, outcome_unknown, overloaded, a refused or dropped connection) is retried with
the SAME request id, at the leader if known, else at the next site. Every outcome goes to F
as one JSON line: request id, site and epoch that released it (system_fingerprint), sent and
answered times, SHA-256 of the text, attempts.

`verify` asks again, with the same ids and prompts, for every answer `run` saw acknowledged. The
release rule says each is answered from the journal: the same text digest, released by the same site
in the same epoch. A missing acknowledged result would run again instead and come back from
another site or epoch; a result released twice with different texts would differ in digest.
Prints a summary and exits 1 on any violation.
"""
import argparse
import hashlib
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse

API_KEY = "bastion-demo-key"


def parse_sites(text):
    sites = []
    for part in text.split(","):
        name, addr = part.split("=")
        host, port = addr.rsplit(":", 1)
        sites.append((name, host, int(port)))
    return sites


class router:
    """Which site to try: the last known leader, else the next site in order."""

    def __init__(self, sites):
        self.sites = sites
        self.lock = threading.Lock()
        self.leader = (sites[0][1], sites[0][2])
        self.rotation = 0

    def target(self):
        with self.lock:
            return self.leader

    def redirect(self, host, port):
        with self.lock:
            self.leader = (host, port)

    def rotate(self):
        with self.lock:
            self.rotation = (self.rotation + 1) % len(self.sites)
            _, h, p = self.sites[self.rotation]
            self.leader = (h, p)


def ask(host, port, request_id, prompt, max_tokens, timeout):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    body = json.dumps({"model": "smollm2", "prompt": prompt, "max_tokens": max_tokens,
                       "temperature": 0})
    try:
        conn.request("POST", "/v1/completions", body=body, headers={
            "Content-Type": "application/json", "Authorization": "Bearer " + API_KEY,
            "X-Request-Id": request_id, "X-Bastion-Priority": "production"})
        r = conn.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        conn.close()


def one_request(rt, request_id, prompt, max_tokens, give_up_s):
    """Asks until an answer or a non-retryable error; returns (record, error)."""
    sent = time.time()
    attempts = 0
    last = ""
    while time.time() - sent < give_up_s:
        attempts += 1
        host, port = rt.target()
        try:
            status, headers, data = ask(host, port, request_id, prompt, max_tokens, timeout=30)
        except (OSError, http.client.HTTPException) as e:
            last = f"{host}:{port}: {type(e).__name__}"
            rt.rotate()
            time.sleep(0.05)
            continue
        if status == 200:
            j = json.loads(data)
            fp = (j.get("system_fingerprint") or "bastion:?:0").split(":")
            text = j["choices"][0]["text"]
            # sm3: what the journal's completion record holds (SM3 of the output text).
            return {"id": request_id, "site": fp[1], "epoch": int(fp[2]), "sent": sent,
                    "done": time.time(), "digest": hashlib.sha256(text.encode()).hexdigest(),
                    "sm3": hashlib.new("sm3", text.encode()).hexdigest(),
                    "attempts": attempts, "via": f"{host}:{port}", "prompt": prompt}, None
        code = ""
        try:
            code = json.loads(data)["error"]["code"]
        except Exception:
            pass
        last = f"{status} {code}"
        if status == 307 and "location" in headers:
            u = urlparse(headers["location"])
            rt.redirect(u.hostname, u.port)
            continue
        if code in ("not_primary", "outcome_unknown"):
            if "x-bastion-leader" in headers:
                h, p = headers["x-bastion-leader"].rsplit(":", 1)
                rt.redirect(h, int(p))
            else:
                rt.rotate()
            time.sleep(0.05)
            continue
        if status == 429:
            time.sleep(float(headers.get("retry-after", "1")))
            continue
        return None, last
    return None, "gave up after %.0f s: %s" % (give_up_s, last)


def run(args):
    rt = router(parse_sites(args.sites))
    out = open(args.out, "w")
    lock = threading.Lock()
    stop = time.time() + args.seconds
    counts = {"ok": 0, "failed": 0}

    def client(k):
        n = 0
        while time.time() < stop:
            rid = f"{args.prefix}-{k}-{n}"
            rec, err = one_request(rt, rid, f"Count to ten: {n % 7}", args.max_tokens,
                                   args.give_up)
            with lock:
                if rec:
                    counts["ok"] += 1
                    out.write(json.dumps(rec) + "\n")
                else:
                    counts["failed"] += 1
                    out.write(json.dumps({"id": rid, "error": err, "sent": time.time()}) + "\n")
                out.flush()
            n += 1
            time.sleep(args.pause)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"load: {counts['ok']} answered, {counts['failed']} failed")
    return 0


def verify(args):
    rt = router(parse_sites(args.sites))
    records = [json.loads(line) for line in open(args.input)]
    acked = [r for r in records if "digest" in r]
    bad = []
    for r in acked:
        # A retry repeats its request exactly: the same id with another prompt is refused
        # (the id belongs to the first request), and max_tokens does not matter for a replay.
        again, err = one_request(rt, r["id"], r["prompt"], 1, args.give_up)
        if again is None:
            bad.append(f"{r['id']}: no answer on retry ({err})")
        elif (again["digest"], again["site"], again["epoch"]) != (r["digest"], r["site"],
                                                                  r["epoch"]):
            bad.append(f"{r['id']}: first {r['site']}/{r['epoch']}/{r['digest'][:8]}, "
                       f"retry {again['site']}/{again['epoch']}/{again['digest'][:8]}")
    print(f"verify: {len(acked)} acknowledged answers asked again, {len(bad)} violations")
    for b in bad[:20]:
        print("  VIOLATION", b)
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["run", "verify"])
    p.add_argument("--sites", required=True)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=4)
    p.add_argument("--pause", type=float, default=0.05)
    p.add_argument("--give-up", type=float, default=60)
    p.add_argument("--prefix", default="load")
    p.add_argument("--out")
    p.add_argument("--in", dest="input")
    args = p.parse_args()
    return run(args) if args.mode == "run" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
