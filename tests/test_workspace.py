"""Workspaces and settings: created on request only, found by option / env / cwd, typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kehu import Workspace
from kehu.errors import KehuInputError, WorkspaceNotFoundError
from kehu.settings import Settings


def test_importing_kehu_creates_nothing(tmp_path: Path) -> None:
    code = "import kehu, kehu.cli.main, kehu.ingest, kehu.warehouse; import os; " \
           "print(sorted(os.listdir('.')))"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_init_layout_and_settings(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "acme", name="ACME 公司", locale="en")
    assert (ws.root / "kehu.toml").is_file() and (ws.root / "warehouse").is_dir()
    s = Settings.load(ws.root / "kehu.toml")
    assert s.company.name == "ACME 公司" and s.company.locale == "en"
    assert ws.store_url == f"sqlite:///{ws.root / 'app.db'}"


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.init(tmp_path / "w")
    monkeypatch.setenv("KEHU_INGEST__BATCH_ROWS", "5000")
    monkeypatch.setenv("KEHU_WORKSPACE", str(ws.root))  # the folder, not a settings section
    s = Workspace.find().settings
    assert s.ingest.batch_rows == 5000


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "w")
    (ws.root / "kehu.toml").write_text("[ingest]\nbatch_rows = 'many'\n", encoding="utf-8")
    with pytest.raises(KehuInputError, match=r"ingest\.batch_rows"):
        Workspace.open(ws.root)
    (ws.root / "kehu.toml").write_text("[import\n", encoding="utf-8")
    with pytest.raises(KehuInputError, match="not valid TOML"):
        Workspace.open(ws.root)


def test_find_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = Workspace.init(tmp_path / "a")
    b = Workspace.init(tmp_path / "b")
    monkeypatch.chdir(a.root)
    monkeypatch.delenv("KEHU_WORKSPACE", raising=False)
    assert Workspace.find().root == a.root
    monkeypatch.setenv("KEHU_WORKSPACE", str(b.root))
    assert Workspace.find().root == b.root
    assert Workspace.find(a.root).root == a.root
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEHU_WORKSPACE")
    with pytest.raises(WorkspaceNotFoundError, match="kehu init"):
        Workspace.find()


def test_each_thread_has_its_own_engine(tmp_path: Path) -> None:
    """A DuckDB connection may not serve two threads at once (it deadlocked the web app while
    the dashboard warmed): each thread gets its own engine; close() closes them all."""
    import threading

    import pyarrow as pa

    ws = Workspace.init(tmp_path / "ws")
    ws.warehouse.append("t", pa.table({"v": list(range(1000))}))
    main = ws.engine
    assert ws.engine is main
    seen: list[object] = []
    sums: list[int] = []

    def work() -> None:
        eng = ws.engine
        seen.append(eng)
        for _i in range(20):
            with eng.cached():
                sums.append(int(eng.table("t").v.sum().execute()))

    threads = [threading.Thread(target=work) for _i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert len({id(e) for e in seen} | {id(main)}) == 5
    assert sums == [499500] * 80
    ws.close()
    assert all(e._con is None for e in [main, *seen])  # type: ignore[attr-defined]


def test_head_version_follows_commits_even_within_one_clock_tick(tmp_path: Path) -> None:
    """The head version is cached by the ``_delta_log`` folder's mtime; two commits within
    one coarse file-system tick leave the mtime unchanged, so a recent listing must not be
    trusted. The second commit is given the first one's mtime by hand."""
    import os

    import pyarrow as pa

    from kehu.warehouse import delta

    ws = Workspace.init(tmp_path / "w")
    wh = ws.warehouse
    t = pa.table({"x": [1]})
    wh.append("t", t)
    log = wh.path("t") / "_delta_log"
    assert wh.head_version("t") == wh.version("t") == 0
    stamp = os.stat(log).st_mtime_ns
    wh.append("t", t)
    os.utime(log, ns=(stamp, stamp))   # as if in the same tick as the first commit
    assert wh.head_version("t") == wh.version("t") == 1
    # a listing older than the racy window is trusted until the folder changes
    old = stamp - 10 * delta._RACY_NS
    os.utime(log, ns=(old, old))
    assert wh.head_version("t") == 1
    wh.append("t", t)
    assert wh.head_version("t") == 2
    assert wh.head_version("missing") is None
