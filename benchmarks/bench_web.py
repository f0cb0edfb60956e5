"""The web app under load (issue 6): ``wrk`` with 50 concurrent connections on 127.0.0.1
against ``kehu serve`` over a workspace with an analysis run — the customer 360 page (random
customers), the filtered customer list (random filters and pages) and the dashboard.

    python -m benchmarks.bench_web --workspace /path/to/1m-workspace [--workers 2]

Needs ``wrk`` (Debian: ``apt-get install -y wrk``). Starts the app itself (``kehu serve
--workers N``) with a temporary secret key and a benchmark user, signs in once, and drives
each page for ``--duration`` seconds, ``--runs`` times; p95 and the other percentiles come
from wrk's own latency histogram (a Lua ``done`` hook). Closed loop: each of the 50
connections sends its next request as soon as the last one is answered, so the latency
includes queueing behind the other 49 — harsher than 50 people clicking. ``--think-ms N``
makes each connection a person who pauses a random time (mean N ms) between clicks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
USER, PASSWORD = "bench-analyst", "bench-password-1"
TARGETS_MS = {"customer_360": 150, "customer_list": 300, "dashboard": 500}
LUA = r"""
local paths = {}
for line in io.lines(os.getenv("KEHU_BENCH_PATHS")) do paths[#paths + 1] = line end
local cookie = os.getenv("KEHU_BENCH_COOKIE")
local think = tonumber(os.getenv("KEHU_BENCH_THINK_MS") or "0")
if think > 0 then
  -- each connection is one person: a random pause (exponential, mean `think` ms) before
  -- the next click; wrk's latency counts from sending, so the pause is not in it
  delay = function() return math.floor(-think * math.log(1 - math.random())) end
end
local n = 0
setup = function(thread) n = n + 1; thread:set("seed", n) end
init = function(args) math.randomseed(os.time() * 1000 + (seed or 0)) end
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Cookie"] = cookie})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'KEHU_JSON {"requests":%d,"socket_errors":%d,"non_2xx":%d,"duration_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def paths(ws: Any, n: int, rng: random.Random) -> dict[str, list[str]]:
    """Request paths per page: random customers for the 360 page, random filter / sort /
    page combinations for the list (pages within the result)."""
    from kehu.accounts.service_levels import tier_scheme
    from kehu.analytics.lifecycle import STAGES

    ids = ws.engine.table("customers").select("customer_id").to_pyarrow() \
        .column(0).to_pylist()
    tiers = [t.code for t in tier_scheme().tiers]
    sorts = ["total_value", "churn_risk", "clv", "current_value"]
    lists = []
    for _i in range(n):
        q = [f"tier={rng.choice(tiers)}", f"sort={rng.choice(sorts)}"]
        if rng.random() < 0.5:
            q.append(f"lifecycle={rng.choice(STAGES)}")
        if rng.random() < 0.3:
            q.append(f"min_risk={rng.choice(['0.2', '0.5', '0.8'])}")
        q.append(f"page={rng.randint(1, 20)}")
        lists.append("/customers?" + "&".join(q))
    return {"customer_360": [f"/customers/{c}" for c in rng.sample(ids, min(n, len(ids)))],
            "customer_list": lists, "dashboard": ["/"]}


def sign_in(base: str) -> str:
    """The session cookie of the benchmark user ("name=value")."""
    import re

    import httpx

    with httpx.Client(base_url=base, timeout=600) as c:
        page = c.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no CSRF token on /login"
        r = c.post("/login", data={"username": USER, "password": PASSWORD,
                                   "csrf_token": token.group(1)})
        assert r.status_code in (200, 303), r.text
        return "; ".join(f"{k}={v}" for k, v in c.cookies.items())


def wait_until_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"kehu serve exited with {proc.returncode}")
        try:
            if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("kehu serve did not answer in time")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and every descendant (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def wait_until_idle(proc: subprocess.Popen[bytes], timeout: float = 1800, window: float = 5,
                    share: float = 0.1) -> float:
    """Wait until the server and its workers use less than ``share`` of one core over
    ``window`` seconds — the app warms its caches in the background after it answers (the
    dashboard, the 360 lookup, the customer index, the portfolios), and a measurement taken
    meanwhile measures the warming. Seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"kehu serve exited with {proc.returncode}")
        c0 = _tree_cpu_seconds(proc.pid)
        time.sleep(window)
        if (_tree_cpu_seconds(proc.pid) - c0) / window < share:
            return round(time.monotonic() - t0, 1)
    raise SystemExit("kehu serve did not settle in time")


def run_wrk(base: str, cookie: str, path_file: Path, script: Path, connections: int,
            duration: int, threads: int, think_ms: int = 0) -> dict[str, Any]:
    env = {**os.environ, "KEHU_BENCH_PATHS": str(path_file), "KEHU_BENCH_COOKIE": cookie,
           "KEHU_BENCH_THINK_MS": str(think_ms)}
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
                          "--timeout", "30s", "-s", str(script), base], env=env,
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("KEHU_JSON "))
    r: dict[str, Any] = json.loads(line.removeprefix("KEHU_JSON "))
    r["rps"] = round(r["requests"] / (r["duration_us"] / 1e6), 1)
    for k in ("p50", "p90", "p95", "p99", "max"):
        r[f"{k}_ms"] = round(r.pop(f"{k}_us") / 1000, 1)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", required=True, help="a workspace with an analysis run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--duration", type=int, default=30, help="seconds per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--pages", default="customer_360,customer_list,dashboard")
    ap.add_argument("--think-ms", type=int, default=0,
                    help="mean pause between a connection's requests (0: closed loop)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install it with `apt-get install -y wrk`")

    from kehu import Workspace
    from kehu.dashboard import warm
    from kehu.store.users import UserIn, create_user, list_users

    ws = Workspace.open(args.workspace)
    if USER not in {u.username for u in list_users(ws.store)}:
        create_user(ws.store, UserIn(username=USER, role="analyst", password=PASSWORD,
                                     locale="zh_CN"), actor="benchmark")
    res: dict[str, Any] = {
        "benchmark": "web", "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "load_before": [round(x, 2) for x in
                                                             os.getloadavg()],
        "customers": ws.warehouse.count("customers"),
        "transactions": ws.warehouse.count("transactions"), "workers": args.workers,
        "connections": args.connections, "duration_s": args.duration, "runs": args.runs,
        "think_ms": args.think_ms,
        "tool": (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
                 .split(" Copyright")[0]), "targets_p95_ms": TARGETS_MS}
    t0 = time.perf_counter()
    res["dashboard_warm_s"] = warm(ws)  # on disk for the server's workers
    from kehu.customer360.lookup import prepare

    res["customer_lookup_build_s"] = prepare(ws)  # likewise the 360 page's sorted copy
    res["dashboard_warm_total_s"] = round(time.perf_counter() - t0, 1)
    by_page = paths(ws, 2000, random.Random(5))
    ws.close()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "KEHU_WEB__SECRET_KEY": secrets.token_urlsafe(48),
           "KEHU_WEB__COOKIE_SECURE": "false", "KEHU_WEB__LOGIN_MAX_FAILURES": "1000"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("kehu")), "serve", "--workspace",
                             args.workspace, "--port", str(port), "--workers",
                             str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="kehu-bench-web-"))
    script = tmp / "kehu.lua"
    script.write_text(LUA)
    try:
        wait_until_up(base, proc)
        res["server_warm_wait_s"] = wait_until_idle(proc)
        cookie = sign_in(base)
        res["pages"] = {}
        for page in args.pages.split(","):
            path_file = tmp / f"{page}.txt"
            path_file.write_text("\n".join(by_page[page]) + "\n")
            # warm every worker's caches (customer index, engine) before measuring: until a
            # short run is answered at a steady pace (a cold worker takes seconds per page)
            for _w in range(12):
                warm_up = run_wrk(base, cookie, path_file, script, args.workers * 2, 5, 1)
                if warm_up["requests"] >= 20 * args.workers and warm_up["max_ms"] < 2000:
                    break
            runs = [run_wrk(base, cookie, path_file, script, args.connections, args.duration,
                            args.threads, args.think_ms) for _i in range(args.runs)]
            summary = {k: statistics.median(r[k] for r in runs)
                       for k in ("rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")}
            summary["errors"] = sum(r["socket_errors"] + r["non_2xx"] for r in runs)
            summary["target_p95_ms"] = TARGETS_MS[page]
            summary["requests"] = sum(r["requests"] for r in runs)
            summary["met"] = (summary["p95_ms"] < TARGETS_MS[page] and summary["errors"] == 0
                              and all(r["requests"] > 0 for r in runs))
            res["pages"][page] = {"median": summary, "runs": runs}
            print(page, json.dumps(summary), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    name = f"web-c{args.connections}" + (f"-think{args.think_ms}" if args.think_ms else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps({k: v["median"] for k, v in res["pages"].items()}, indent=2))


if __name__ == "__main__":
    main()
