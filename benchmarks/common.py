"""What every benchmark records: the machine, the date, the versions of the tools compared,
and measured steps run as subprocesses (wall time and peak resident memory from ``wait4``).

The measured step runs in its own process so that its peak RSS is its own (not the
benchmark driver's, nor a previous step's) and start-up is paid the same way by every tool.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: where results are written: benchmarks/results, or $KEHU_BENCH_RESULTS (the --quick suite
#: writes to build/bench/results-quick, so smoke runs never replace the real results)
RESULTS = Path(os.environ.get("KEHU_BENCH_RESULTS") or Path(__file__).parent / "results")
#: scratch space for generated data and workspaces (git-ignored); override with --workdir
BUILD = ROOT / "build" / "bench"
#: the separate environment for pymc-marketing (not a kehu dependency)
PYMC_VENV = ROOT / "build" / "pymc-venv"

#: distributions whose versions are recorded, in this order (missing ones are left out)
PACKAGES = ("duckdb", "pyarrow", "deltalake", "ibis-framework", "pandas", "numpy",
            "pyspark", "splink", "lifetimes", "pymc-marketing", "recordlinkage")


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and the load when the benchmark started."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 ** 2, 1)
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib,
            "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
            "load_at_start": load}


def _pymc_version() -> str | None:
    py = PYMC_VENV / "bin" / "python"
    if not py.exists():
        return None
    try:
        out = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                              "print(m.version('pymc-marketing'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str]:
    """Python, kehu and every compared package that is installed (pymc-marketing from its
    separate environment under build/ when that exists)."""
    v = {"python": platform.python_version()}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        v["kehu"] = importlib.metadata.version("kehu")
    commit = git_commit()
    if commit:
        v["kehu_commit"] = commit
    for p in PACKAGES:
        try:
            v[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            if p == "pymc-marketing":
                pv = _pymc_version()
                if pv:
                    v[p] = pv + " (separate venv)"
    return v


def meta(**sizes: Any) -> dict[str, Any]:
    """The header of every result file."""
    return {"date": datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "versions": versions(), "sizes": sizes}


@dataclass
class Measured:
    seconds: float
    peak_rss_mib: int
    stdout: str
    #: user + system CPU seconds of the process (not of its own children)
    cpu_seconds: float = 0.0

    def json(self) -> Any:
        """The last line of stdout that parses as JSON (workers print one at the end)."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith(("{", "[")):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"no JSON in the output: {self.stdout[-500:]!r}") from None


#: Runs a command and reports its wall time and peak RSS. On Linux a child's ``ru_maxrss``
#: starts from its parent's high-water mark at fork (exec keeps the larger), so a driver
#: that has generated data in memory would lend its peak to every measured step; this
#: small interpreter forks the step instead, and reports on the descriptor it is given.
_LAUNCHER = """
import os, sys, time
fd = int(sys.argv[1])
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.close(fd)
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
os.write(fd, b"%d %.6f %.3f" % (ru.ru_maxrss, time.perf_counter() - t0,
                               ru.ru_utime + ru.ru_stime))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def measure(cmd: Sequence[str], env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Measured:
    """Run ``cmd`` as a subprocess: its wall time and its own peak RSS (``ru_maxrss`` from
    ``wait4``, through a small launcher process — see ``_LAUNCHER``)."""
    rfd, wfd = os.pipe()
    proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(wfd), *map(str, cmd)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})}, cwd=cwd or ROOT,
                            pass_fds=(wfd,))
    os.close(wfd)
    out, err = proc.communicate()
    with os.fdopen(rfd, "rb") as f:
        report = f.read().decode()
    if proc.returncode or not report:
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} failed ({proc.returncode}): "
                           f"{err.decode(errors='replace')[-3000:]}")
    rss_kib, wall, cpu = report.split()
    return Measured(float(wall), int(rss_kib) // 1024, out.decode(errors="replace"),
                    float(cpu))


def python_worker(module: str, *args: str) -> list[str]:
    """The command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def med(xs: Sequence[float], nd: int = 3) -> float:
    return round(statistics.median(xs), nd)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")
    return path


def progress(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)
