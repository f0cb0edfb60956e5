"""The CLI as a user meets it: real subprocesses, exit codes, no tracebacks, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

KEHU = [sys.executable, "-m", "kehu.cli.main"]


def kehu(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "KEHU_LANG": "en", **(env or {})}
    e.pop("KEHU_WORKSPACE", None) if env is None or "KEHU_WORKSPACE" not in env else None
    return subprocess.run([*KEHU, *args], cwd=cwd, env=e, capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_init_json_and_refuse_twice(tmp_path: Path) -> None:
    r = kehu("init", str(tmp_path / "w"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert Path(info["workspace"]).name == "w" and info["store"].startswith("sqlite:///")
    r = kehu("init", str(tmp_path / "w"))
    assert r.returncode == 2
    assert "already a kehu workspace" in r.stderr and "Traceback" not in r.stderr


def test_workspace_from_option_env_or_cwd(tmp_path: Path) -> None:
    kehu("init", str(tmp_path / "w"))
    csv = tmp_path / "c.csv"
    csv.write_text("customer_id,name\nA,a\n", encoding="utf-8")
    assert kehu("import", "customers", str(csv), "--yes", "-w", str(tmp_path / "w")
                ).returncode == 0
    r = kehu("imports", "--json", env={"KEHU_WORKSPACE": str(tmp_path / "w")})
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1
    r = kehu("imports", "--json", cwd=tmp_path / "w")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 1
    r = kehu("imports", cwd=tmp_path)
    assert r.returncode == 3 and "kehu init" in r.stderr and "Traceback" not in r.stderr


def test_import_json_report_and_rejects_export(tmp_path: Path) -> None:
    kehu("init", str(tmp_path / "w"))
    csv = tmp_path / "c.csv"
    csv.write_text("客户编号,姓名,出生日期\nA,张三,1990-01-01\nB,李四,1990-13-01\n",
                   encoding="utf-8")
    r = kehu("import", "customers", str(csv), "--json", "-w", str(tmp_path / "w"))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert {k: rep[k] for k in ("read", "loaded", "rejected", "inserted", "updated",
                                "unchanged")} == {"read": 2, "loaded": 1, "rejected": 1,
                                                  "inserted": 1, "updated": 0, "unchanged": 0}
    out = tmp_path / "rej.csv"
    r = kehu("rejects", "--export", str(out), "-w", str(tmp_path / "w"))
    assert r.returncode == 0
    text = out.read_bytes()
    assert text.startswith(b"\xef\xbb\xbf")  # opens in Excel with Chinese intact
    assert "1990-13-01" in text.decode("utf-8-sig") and "birth_date" in text.decode("utf-8-sig")


def test_no_terminal_never_waits_and_stops_when_mapping_is_incomplete(tmp_path: Path) -> None:
    kehu("init", str(tmp_path / "w"))
    csv = tmp_path / "odd.csv"
    csv.write_text("foo,bar\n1,2\n", encoding="utf-8")
    r = kehu("import", "transactions", str(csv), "-w", str(tmp_path / "w"), stdin="")
    assert r.returncode == 4
    assert "transaction_id" in r.stderr and "--mapping" in r.stderr
    assert "Traceback" not in r.stderr


def test_save_mapping_then_use_it(tmp_path: Path) -> None:
    kehu("init", str(tmp_path / "w"))
    csv = tmp_path / "c.csv"
    csv.write_text("编号,名字\nA,张三\n", encoding="utf-8")
    m = tmp_path / "m.yaml"
    r = kehu("import", "customers", str(csv), "--save-mapping", str(m), "-w", str(tmp_path / "w"))
    assert r.returncode == 0 and m.exists()
    text = m.read_text(encoding="utf-8").replace("attributes:", "columns:\n  customer_id: 编号\n"
                                                 "attributes:")
    text = text.replace("  编号:\n    name: 编号\n", "")
    m.write_text(text, encoding="utf-8")
    r = kehu("import", "customers", str(csv), "--mapping", str(m), "--yes", "--json",
             "-w", str(tmp_path / "w"))
    assert r.returncode == 0, r.stderr + text
    assert json.loads(r.stdout)["loaded"] == 1


@pytest.mark.parametrize("args,code,needle", [
    (["import", "widgets", "x.csv"], 2, "Unknown entity 'widgets'"),
    (["import", "customers", "missing.csv"], 2, "File not found"),
    (["rejects", "--limit", "0"], 2, "'--limit' parameter must be an int >= 1. Got 0"),
])
def test_user_errors_are_messages_with_exit_codes(tmp_path: Path, args: list[str], code: int,
                                                   needle: str) -> None:
    kehu("init", str(tmp_path / "w"))
    r = kehu(*args, "-w", str(tmp_path / "w"), cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_chinese_output(tmp_path: Path) -> None:
    r = kehu("--lang", "zh_CN", "init", str(tmp_path / "w"))
    assert r.returncode == 0
    assert "工作区" in r.stdout


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    r = kehu("demo", "--path", str(tmp_path / "demo"), "--customers", "2000", "--json",
             "--no-serve")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    by_entity = {i["entity"]: i for i in out["imports"]}
    assert {"customers", "transactions", "contracts", "interactions", "tickets",
            "campaign_contacts", "churn_events"} <= set(by_entity)
    for rep in out["imports"]:
        assert rep["read"] == rep["loaded"] + rep["rejected"]
    # the planted dirty rows show up as rejects (at least the transaction ones)
    assert by_entity["transactions"]["rejected"] > 0
    # identity resolution merged the planted duplicates: one customer per kehu key
    ident = out["identity"]
    assert ident["records"] == by_entity["customers"]["loaded"]
    planted = pq.read_table(tmp_path / "demo" / "sources" / "truth" / "duplicates.parquet")
    assert ident["records"] - ident["customers"] == planted.num_rows > 0
    assert out["headline"]["customers"] == ident["customers"]
    assert 0.5 < out["headline"]["top20_revenue_share"] < 0.95
    # and trained a churn model: the riskiest customers come with reasons, riskiest first
    risks = [c["churn_risk"] for c in out["churn"]]
    assert len(risks) == 5 and risks == sorted(risks, reverse=True) and 0 < risks[0] <= 1
    assert all(json.loads(c["churn_reasons"]) for c in out["churn"])
    # the demo ran the analysis: value by tier covers every customer
    r = kehu("value", "--json", "-w", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr[-3000:]
    v = json.loads(r.stdout)
    assert sum(g["customers"] for g in v["groups"]) == out["headline"]["customers"]
    assert all(u["profit"] < 0 for u in v["unprofitable"])
    # running it again re-creates the demo workspace
    r = kehu("demo", "--path", str(tmp_path / "demo"), "--customers", "500", "--json",
             "--no-serve")
    assert r.returncode == 0, r.stderr[-3000:]
    # a folder that is not a demo is never deleted
    (tmp_path / "mine").mkdir()
    r = kehu("demo", "--path", str(tmp_path / "mine"), "--customers", "100")
    assert r.returncode == 2 and "not a kehu demo folder" in r.stderr


def test_rfm_and_tiers_commands_on_cdnow(tmp_path: Path) -> None:
    w = str(tmp_path / "w")
    kehu("init", w)
    assert kehu("datasets", "load", "cdnow", "-w", w).returncode == 0
    r = kehu("rfm", "--as-of", "1998-06-30", "--json", "-w", w)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert sum(c["customers"] for c in out["classes"]) == 23570
    assert len(out["classes"]) == 8
    r = kehu("tiers", "--as-of", "1998-06-30", "--compare", "1997-12-31", "--json", "-w", w)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert sum(x["customers"] for x in t["tiers"]) == 23570 and t["basis"] == "spend"
    assert sum(t["changes"]["moves"].values()) == 23570
    r = kehu("rfm", "--as-of", "June", "-w", w)
    assert r.returncode == 2 and "'--as-of' parameter must be a date" in r.stderr


@pytest.mark.slow
def test_demo_opens_the_web_app_with_demo_users(tmp_path: Path) -> None:
    import re
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "KEHU_LANG": "en"}
    proc = subprocess.Popen([*KEHU, "demo", "--path", str(tmp_path / "demo"), "--customers",
                             "300", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = ""
    try:
        deadline = time.time() + 240
        assert proc.stdout is not None
        while time.time() < deadline:
            line = proc.stdout.readline()
            out += line
            if "Ctrl+C" in line or proc.poll() is not None:
                break
        assert "Ctrl+C" in out, out[-3000:]
        pw = re.search(r"analyst\s*│\s*analyst\s*│\s*(\S+)", out)
        assert pw, out[-3000:]
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health") as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.2)
        # the printed password signs the analyst in
        import http.cookiejar
        import urllib.parse

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, page[:2000]
        data = urllib.parse.urlencode({"username": "analyst", "password": pw.group(1),
                                       "csrf_token": token.group(1)}).encode()
        home = opener.open(f"http://127.0.0.1:{port}/login", data=data)
        assert home.status == 200 and "/login" not in home.geturl()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
