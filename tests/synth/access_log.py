#!/usr/bin/env python3
"""Synthetic schema-v1 access logs with known truth, for analytics tests and benchmarks.

    tests/synth/access_log.py --lines N [--days D] [--seed S] [--start YYYY-MM-DD] [--truth FILE] > access.log

Writes client sessions (docker pulls, re-pulls that are version checks,
podman multi-arch pulls, cri-o double fetches, HEAD-then-GET, pollers that
HEAD every 5 minutes, CI bursts, typo'd repositories answered 404, requests
with DNT, IPv6 neighbours in one /64, pings and token requests) over D days,
until about N lines, and writes what a correct analytics must count to
--truth as JSON: totals and per-day counters. Actions of one origin for one
repository are at least 10 minutes apart and their requests within 20 s, so
any window between 20 s and 10 minutes gives the same truth. Lines are in
time order within a session and sessions interleave, as on a real gateway.
"""
import argparse, hashlib, ipaddress, json, random, sys

DAY = 86400
UAS = {
    "docker": "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.10.14-linuxkit os/linux arch/arm64 UpstreamClient(Docker-Client/27.3.1 \\\\(darwin\\\\))",
    "docker-ci": "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-1025-azure os/linux arch/amd64",
    "podman": "containers/5.23.1 (github.com/containers/image)",
    "cri-o": "cri-o/1.30.4 go/go1.22.5 os/linux arch/amd64",
    "containerd": "containerd/v1.7.21-k3s2",
    "watchtower": "Go-http-client/1.1",
    "skopeo": "skopeo/1.9.3",
}
REPOS = ["acme/app", "acme/tool", "acme/base"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, required=True)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", default="2026-03-02")  # a Monday
    ap.add_argument("--truth")
    # Share of clients on IPv6, each in a /64 of its own: many origins.
    ap.add_argument("--ipv6", type=float, default=0.05)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    y, m, d = map(int, a.start.split("-"))
    import datetime
    start = int(datetime.datetime(y, m, d, tzinfo=datetime.timezone.utc).timestamp())

    out = []  # (ts, line)
    truth = {"totals": dict(requests=0, pulls=0, version_checks=0, downloads=0), "days": {}}
    origins, ips = set(), set()  # (ip, ua, day), (net, day)
    seq = [0]

    def day_of(ts):
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")

    def counter(day):
        return truth["days"].setdefault(day, dict(requests=0, pulls=0, version_checks=0, downloads=0, origins=set(), ips=set()))

    def emit(ts, ip, ua, method, uri, status, dnt=False, route="acme", mode="redirect"):
        seq[0] += 1
        rid = "%032x" % ((a.seed << 96) ^ seq[0] * 0x9E3779B97F4A7C15 % (1 << 96))
        line = {
            "ts": "%.3f" % ts, "id": rid, "ip": ip, "host": "get.acme.dev", "method": method, "uri": uri,
            "status": status, "bytes": 0 if status >= 300 else 512, "rt": 0.001, "ua": ua, "accept": "*/*",
            "auth": "bearer" if "token" not in uri else "none", "range": "", "dnt": "1" if dnt else "",
            "route": route, "upstream": "" if status == 404 else "https://registry.example" + uri, "mode": mode,
        }
        s = json.dumps(line, separators=(",", ":")).replace("\\\\\\\\", "\\\\")
        out.append((ts, s))
        truth["totals"]["requests"] += 1
        counter(day_of(ts))["requests"] += 1

    def action(ts, ip, ua, kind, download, dnt=False):
        # DNT traffic counts by the same rules, never in the uniques (docs/analytics.md).
        c = counter(day_of(ts))
        key = {"pull": "pulls", "check": "version_checks"}[kind]
        truth["totals"][key] += 1
        c[key] += 1
        if download:
            truth["totals"]["downloads"] += 1
            c["downloads"] += 1
        if dnt:
            return
        # The shipper hashes IPv6 addresses by their /64, in both hashes.
        net = str(ipaddress.IPv6Network(ip + "/64", strict=False).network_address) if ":" in ip else ip
        origins.add((net, ua, day_of(ts)))
        ips.add((net, day_of(ts)))
        c["origins"].add((net, ua))
        c["ips"].add(net)

    def digest(*key):
        # As real images have them: one per (repository, tag, platform) or layer.
        return "sha256:" + hashlib.sha256(repr(key).encode()).hexdigest()

    def docker_pull(t, ip, ua, repo, dnt=False):
        tag = rnd.choice(["1.0", "1.1", "latest"])
        emit(t, ip, ua, "GET", "/v2/", 401, dnt, route="", mode="local")
        emit(t + 0.1, ip, ua, "HEAD", f"/v2/{repo}/manifests/{tag}", 307, dnt)
        emit(t + 0.3, ip, ua, "GET", f"/v2/{repo}/manifests/{digest(repo, tag)}", 307, dnt)
        emit(t + 0.5, ip, ua, "GET", f"/v2/{repo}/manifests/{digest(repo, tag, 'amd64')}", 307, dnt)
        for i in range(rnd.randint(1, 4)):
            emit(t + 1 + i, ip, ua, "GET", f"/v2/{repo}/blobs/{digest(repo, tag, 'layer', i)}", 307, dnt)
        action(t, ip, ua, "pull", True, dnt)

    def docker_repull(t, ip, ua, repo):
        emit(t, ip, ua, "GET", "/v2/", 401, route="", mode="local")
        emit(t + 0.1, ip, ua, "HEAD", f"/v2/{repo}/manifests/1.0", 307)
        action(t, ip, ua, "check", False)

    def podman_multi(t, ip, ua, repo):
        emit(t, ip, ua, "GET", f"/v2/{repo}/manifests/1.0", 200, mode="proxy")
        emit(t + 0.2, ip, ua, "GET", f"/v2/{repo}/manifests/{digest(repo, '1.0', 'arm64')}", 200, mode="proxy")
        emit(t + 0.4, ip, ua, "GET", f"/v2/{repo}/blobs/{digest(repo, '1.0', 'layer', 0)}", 200, mode="proxy")
        action(t, ip, ua, "pull", True)

    def crio(t, ip, ua, repo):
        emit(t, ip, ua, "GET", f"/v2/{repo}/manifests/1.0", 200, mode="proxy")
        emit(t + 0.2, ip, ua, "GET", f"/v2/{repo}/manifests/1.0", 200, mode="proxy")
        emit(t + 0.4, ip, ua, "GET", f"/v2/{repo}/blobs/{digest(repo, '1.0', 'layer', 1)}", 200, mode="proxy")
        action(t, ip, ua, "pull", True)

    def head_then_get(t, ip, ua, repo):
        d = digest(repo, rnd.choice(["1.0", "1.1", "latest"]), "amd64")
        emit(t, ip, ua, "HEAD", f"/v2/{repo}/manifests/{d}", 200, mode="proxy")
        emit(t + 0.1, ip, ua, "GET", f"/v2/{repo}/manifests/{d}", 200, mode="proxy")
        action(t, ip, ua, "pull", False)

    def typo(t, ip, ua):
        emit(t, ip, ua, "GET", "/v2/acme/tpyo/manifests/1.0", 404, route="", mode="local")

    def token(t, ip, ua, repo):
        emit(t, ip, ua, "GET", f"/token?scope=repository%3A{repo.replace('/', '%2F')}%3Apull&service=get.acme.dev&access_token=SECRET-{seq[0]}", 200, mode="proxy")

    # Fixed pollers: a HEAD every 5 minutes for the whole period.
    pollers = [("198.51.100.%d" % (200 + i), UAS["watchtower"]) for i in range(3)]
    per_poller = a.days * DAY // 300
    budget = a.lines - 2 * len(pollers) * per_poller
    for ip, ua in pollers:
        for k in range(per_poller):
            docker_repull(start + 60 + k * 300 + rnd.random(), ip, ua, "acme/app")
    # Sessions until the line budget is spent.
    last = {}  # (ip, ua, repo) -> ts of its last action
    scenarios = [docker_pull, docker_pull, docker_repull, podman_multi, crio, head_then_get]
    while len(out) < a.lines and budget > 0:
        t = start + rnd.random() * (a.days * DAY - 120)
        kind = rnd.random()
        if kind < a.ipv6:
            ip = "2001:db8:%x:%x::%x" % (rnd.randint(0, 9), rnd.randint(0, 0xffff), rnd.randint(1, 0xffff))
        else:
            ip = "203.0.113.%d" % rnd.randint(1, 254) if kind < a.ipv6 + (1 - a.ipv6) / 2 else "192.0.2.%d" % rnd.randint(1, 254)
        ua = rnd.choice([UAS["docker"], UAS["docker-ci"], UAS["podman"], UAS["cri-o"], UAS["containerd"], UAS["skopeo"]])
        repo = rnd.choice(REPOS)
        day_start = t - (t - start) % DAY
        # Origins are per (address or IPv6 /64, agent): space actions by that.
        net = str(ipaddress.IPv6Network(ip + "/64", strict=False).network_address) if ":" in ip else ip
        key = (net, ua, repo)
        # Actions of one origin and repository at least 10 minutes apart, and not across midnight.
        if any(abs(t - p) < 600 for p in last.get(key, [])) or t + 30 > day_start + DAY:
            continue
        last.setdefault(key, []).append(t)
        r = rnd.random()
        before = len(out)
        if r < 0.03:
            typo(t, ip, ua)
        elif r < 0.06:
            docker_pull(t, ip, ua, repo, dnt=True)
        elif r < 0.09:
            token(t, ip, ua, repo)
        elif r < 0.12:
            # An IPv6 neighbour in one shared /64: one origin per agent there.
            if any(abs(t - p) < 600 for p in last.get(("2001:db8:77:1::", ua, repo), [])):
                continue
            last.setdefault(("2001:db8:77:1::", ua, repo), []).append(t)
            docker_pull(t, "2001:db8:77:1::%x" % rnd.randint(1, 0xffff), ua, repo)
        else:
            rnd.choice(scenarios)(t, ip, ua, repo)
        budget -= len(out) - before

    out.sort(key=lambda x: x[0])
    w = sys.stdout.write
    for _, line in out:
        w(line + "\n")
    truth["totals"]["unique_origins"] = len(origins)
    truth["totals"]["unique_ips"] = len(ips)
    for day, c in truth["days"].items():
        c["unique_origins"] = len(c.pop("origins"))
        c["unique_ips"] = len(c.pop("ips"))
    truth["lines"] = len(out)
    truth["pollers"] = {"origins": len(pollers), "version_checks": len(pollers) * per_poller}
    truth["start"] = start
    truth["end"] = start + a.days * DAY
    if a.truth:
        with open(a.truth, "w") as f:
            json.dump(truth, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
