"""Load test of the running app: N concurrent gradio_client clients x M requests, in rounds.

    python -m benchmarks.load [--clients 8] [--requests 10] [--tab sr|smile|expression|all]
                              [--rounds 4] [--url URL] [--json PATH] [--warm-all]

Without ``--url`` the app is started here (``app.py`` in a subprocess, on 127.0.0.1 and a free
port: loopback only) and stopped at the end. Each round runs ``clients`` threads, each with its
own gradio_client session, sending ``requests`` requests in turn across the chosen tabs' model
endpoints (``/super_resolve`` with the bicubic model, ``/smile`` and ``/expression`` with the
registered models) on a face photo (``--photo``, else scikit-image's public-domain astronaut).

Reported once: the app's cold start (seconds from launching ``app.py`` to its first page, when
it is started here), its resident memory then, and with ``--warm-all`` its memory after one
request per task has loaded every registered model of the chosen tabs. Reported per round:
p50 / p95 / max latency, errors, queue-full rejections (handled when the app says so in a
sentence), the peak resident memory (RSS) of the app process and its children, and their RSS
once the round is over (settled). Across rounds: whether memory grows, judged on the median of the
round-to-round changes of the settled RSS. The median, because memory also rises once, in one
step, the first time concurrent requests peak together (the allocator's high-water mark); a leak
rises every round. Judging needs at least 3 rounds. Everything is bounded: a per-request timeout
and an overall deadline. Exit status 0 when no request failed (rejections do not count as failures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from facegen.io import atomic_write_bytes

REPO = Path(__file__).resolve().parent.parent
TABS = ("sr", "smile", "expression")
# A queue-full answer is handled when it says so in words (gradio_client's QueueError / the app's queue).
QUEUE_FULL = re.compile(r"queue is full", re.IGNORECASE)
# Median round-to-round growth of the settled RSS that counts as "growing": allocator noise stays
# below it, a leak of ~1 MB per request at the default 80 requests per round does not.
RSS_GROWTH_TOLERANCE_MB = 64.0


class LoadError(RuntimeError):
    """The load test could not run (the app did not start, or a setting is wrong)."""


@dataclass
class Round:
    """What one round measured."""

    round: int
    requests: int
    ok: int
    errors: int
    rejected: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    peak_rss_mb: float
    seconds: float
    rss_after_mb: float = float("nan")  # the app's RSS once the round's requests have all been answered
    error_messages: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The whole load test: settings, rounds and the verdicts."""

    url: str
    started_app: bool
    tabs: list[str]
    endpoints: list[str]
    clients: int
    requests: int
    rounds: list[Round]
    rss_growth_mb: float
    rss_grows: bool
    failed: int
    rejected: int
    p50_ms: float
    p95_ms: float
    peak_rss_mb: float
    cpu_count: int
    note: str = ""
    startup_s: float = float("nan")  # launch of app.py -> first page (only when started here)
    rss_started_mb: float = float("nan")  # the app's RSS right after it served its first page
    rss_all_models_mb: float = float("nan")  # ... after every registered model was loaded (--warm-all)
    warm_all_s: float = float("nan")  # the --warm-all requests, first use of each model included

    @property
    def passed(self) -> bool:
        return self.failed == 0 and not self.rss_grows


# ---------------------------------------------------------------------------------------------
# The app process
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen | None, timeout_s: float) -> None:
    """Poll ``url`` until it answers; fail early if the app process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LoadError(f"The app exited with status {proc.returncode} before it served any page.")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1.0)
    raise LoadError(f"The app did not answer at {url} within {timeout_s:.0f} s.")


def start_app(log_path: Path, timeout_s: float) -> tuple[subprocess.Popen, str]:
    """Start ``app.py`` on 127.0.0.1 and a free port; return the process and its URL."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, proc, timeout_s)
    except BaseException:
        stop_app(proc)
        raise
    return proc, url


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (psutil; /proc when psutil is absent)."""
    try:
        import psutil
    except ImportError:  # Linux fallback
        return _proc_rss(pid)
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            continue
    return total


def _proc_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRSS:
    """Sample a process's RSS every ``interval`` seconds in a thread; keep the peak."""

    def __init__(self, pid: int | None, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.pid is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes(self.pid))


def server_pid(url: str) -> int | None:
    """The pid listening on the URL's loopback port, when it runs on this machine (psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    port = int(url.rstrip("/").rsplit(":", 1)[-1].split("/")[0]) if url.count(":") >= 2 else None
    if port is None:
        return None
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                return c.pid
    except (psutil.Error, OSError):
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def default_photo(folder: Path) -> Path:
    """scikit-image's astronaut at 256 pixels (one face of about 60 pixels): a typical upload."""
    from skimage import data

    path = folder / "astronaut-256.png"
    Image.fromarray(data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS).save(path)
    return path


def warm_all_calls(tabs: list[str], photo: Path) -> list[tuple[str, tuple]]:
    """One request per task of ``tabs`` with every registered model of that task: loads them all."""
    from facegen import registry  # the models' modules import torch: the load client itself stays light

    calls = []
    for tab in tabs:
        tasks = ("sr-x2", "sr-x4", "sr-x8") if tab == "sr" else (tab,)
        for task in tasks:
            ids = [s.id for s in registry.models_for(task)]
            if not ids:
                continue
            if tab == "sr":
                args = (handle_file(str(photo)), "All faces", [], task, ids, "Enlarge this photo", True)
                calls.append(("/super_resolve", args))
            elif tab == "smile":
                calls.append(("/smile", (handle_file(str(photo)), "All faces", [], ids, True)))
            else:
                calls.append(("/expression", (handle_file(str(photo)), "All faces", [], ids, "happy", 1.0, None,
                                              True)))
    return calls


def endpoint_calls(tabs: list[str], photo: Path) -> list[tuple[str, tuple]]:
    """(api_name, arguments) of the model endpoints of ``tabs``, with the registered models."""
    from facegen import registry  # torch-heavy, as in warm_all_calls

    calls = []
    for tab in tabs:
        if tab == "sr":
            calls.append(("/super_resolve", (handle_file(str(photo)), "All faces", [], "sr-x4", ["bicubic"],
                                             "Enlarge this photo", True)))
        elif tab == "smile":
            ids = [s.id for s in registry.models_for("smile")]
            if ids:
                calls.append(("/smile", (handle_file(str(photo)), "All faces", [], ids[:1], True)))
        elif tab == "expression":
            ids = [s.id for s in registry.models_for("expression")]
            if ids:
                calls.append(("/expression", (handle_file(str(photo)), "All faces", [], ids[:1], "happy", 1.0, None,
                                              True)))
    if not calls:
        raise LoadError(f"No model is registered for the tab(s) {', '.join(tabs)}, so there is nothing to load.")
    return calls


@dataclass
class Answer:
    ms: float
    kind: str  # "ok" | "rejected" | "error"
    message: str = ""


def one_client(url: str, calls: list[tuple[str, tuple]], requests: int, offset: int, timeout_s: float,
               deadline: float) -> list[Answer]:
    """One gradio_client session sending ``requests`` requests, cycling through ``calls``."""
    answers: list[Answer] = []
    try:
        client = Client(url, verbose=False, download_files=False)
    except Exception as e:  # noqa: BLE001 - a client that cannot connect is a failed request each
        return [Answer(0.0, "error", f"could not connect: {e}")] * requests
    for i in range(requests):
        if time.monotonic() > deadline:
            answers.append(Answer(0.0, "error", "not sent: the load test's deadline passed"))
            continue
        api_name, args = calls[(offset + i) % len(calls)]
        t0 = time.perf_counter()
        try:
            client.submit(*args, api_name=api_name).result(timeout=timeout_s)
            answers.append(Answer((time.perf_counter() - t0) * 1000, "ok"))
        except Exception as e:  # noqa: BLE001 - every failure is classified and reported
            ms = (time.perf_counter() - t0) * 1000
            msg = f"{api_name}: {type(e).__name__}: {e}"[:300]
            answers.append(Answer(ms, "rejected" if QUEUE_FULL.search(str(e)) else "error", msg))
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass
    return answers


def run_round(k: int, url: str, pid: int | None, calls, clients: int, requests: int, timeout_s: float,
              deadline: float) -> Round:
    t0 = time.perf_counter()
    with PeakRSS(pid) as rss, ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one_client, url, calls, requests, c, timeout_s, deadline) for c in range(clients)]
        answers = [a for f in futures for a in f.result()]
    ms = np.array([a.ms for a in answers if a.kind == "ok"] or [float("nan")])
    errors = [a.message for a in answers if a.kind == "error"]
    return Round(
        round=k, requests=len(answers), ok=sum(a.kind == "ok" for a in answers), errors=len(errors),
        rejected=sum(a.kind == "rejected" for a in answers),
        p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)), max_ms=float(ms.max()),
        peak_rss_mb=rss.peak / 2**20, seconds=time.perf_counter() - t0,
        rss_after_mb=rss_bytes(pid) / 2**20 if pid is not None else float("nan"), error_messages=errors[:5],
    )


def rss_growth(settled_mb: list[float]) -> float:
    """Median round-to-round change of the settled RSS; NaN (not judged) with fewer than 3 rounds."""
    if len(settled_mb) < 3:
        return float("nan")
    return float(np.median(np.diff(settled_mb)))


def run_load(url: str | None = None, *, clients: int = 8, requests: int = 10, tab: str = "sr", rounds: int = 4,
             photo: Path | None = None, request_timeout_s: float = 300.0, deadline_s: float = 1800.0,
             start_timeout_s: float = 300.0, warm_all: bool = False) -> Report:
    """Run the load test (starting the app on loopback when ``url`` is None) and return its report."""
    if clients < 1 or requests < 1 or rounds < 1:
        raise LoadError("--clients, --requests and --rounds must each be at least 1.")
    tabs = list(TABS) if tab == "all" else [tab]
    if any(t not in TABS for t in tabs):
        raise LoadError(f"Unknown tab {tab!r}; choose one of {', '.join(TABS)} or all.")
    deadline = time.monotonic() + deadline_s
    with tempfile.TemporaryDirectory(prefix="facegen-load-") as tmp:
        proc, startup_s = None, float("nan")
        if url is None:
            t0 = time.perf_counter()
            proc, url = start_app(Path(tmp) / "app.log", start_timeout_s)
            startup_s = time.perf_counter() - t0
        try:
            pid = proc.pid if proc is not None else server_pid(url)
            rss_started = rss_bytes(pid) / 2**20 if pid is not None else float("nan")
            photo = photo or default_photo(Path(tmp))
            calls = endpoint_calls(tabs, photo)
            rss_all, warm_all_s = float("nan"), float("nan")
            if warm_all:
                t0 = time.perf_counter()
                for call in warm_all_calls(tabs, photo):
                    got = one_client(url, [call], 1, 0, request_timeout_s, deadline)
                    if got[0].kind != "ok":
                        raise LoadError(f"Loading every model failed: {got[0].message}")
                warm_all_s = time.perf_counter() - t0
                rss_all = rss_bytes(pid) / 2**20 if pid is not None else float("nan")
            # One request first: model loading and detector start-up are not part of the rounds.
            warm = one_client(url, calls[:1], 1, 0, request_timeout_s, deadline)
            if warm[0].kind != "ok":
                raise LoadError(f"The first request failed: {warm[0].message}")
            done = [run_round(k + 1, url, pid, calls, clients, requests, request_timeout_s, deadline)
                    for k in range(rounds)]
        except BaseException:
            if proc is not None:
                _print_log_tail(Path(tmp) / "app.log")
            raise
        finally:
            if proc is not None:
                stop_app(proc)
    ok_ms = [r.p50_ms for r in done]
    growth = rss_growth([r.rss_after_mb for r in done]) if pid is not None else float("nan")
    all_p95 = max(r.p95_ms for r in done)
    return Report(
        url=url, started_app=proc is not None, tabs=tabs, endpoints=[c[0] for c in calls], clients=clients,
        requests=requests, rounds=done, rss_growth_mb=growth,
        rss_grows=bool(growth > RSS_GROWTH_TOLERANCE_MB),  # False for NaN: not judged
        failed=sum(r.errors for r in done), rejected=sum(r.rejected for r in done),
        p50_ms=float(np.median(ok_ms)), p95_ms=all_p95,
        peak_rss_mb=max(r.peak_rss_mb for r in done), cpu_count=os.cpu_count() or 0,
        note="" if pid is not None else "RSS not measured: the app's process is not on this machine.",
        startup_s=startup_s, rss_started_mb=rss_started, rss_all_models_mb=rss_all, warm_all_s=warm_all_s,
    )


def _print_log_tail(path: Path) -> None:
    try:
        tail = path.read_text(errors="replace").splitlines()[-20:]
    except OSError:
        return
    print("last lines of the app's log:\n" + "\n".join(tail), file=sys.stderr)


def format_report(r: Report) -> str:
    lines = [f"load test of {r.url} ({'started here' if r.started_app else 'running'}): tabs {', '.join(r.tabs)} "
             f"({', '.join(r.endpoints)}), {r.clients} clients x {r.requests} requests per round, {r.cpu_count} CPUs"]
    if not math.isnan(r.startup_s):
        lines.append(f"cold start {r.startup_s:.1f} s (launch -> first page), RSS then {r.rss_started_mb:.0f} MB")
    if not math.isnan(r.rss_all_models_mb):
        lines.append(f"every registered model of these tabs loaded in {r.warm_all_s:.1f} s (first requests); "
                     f"RSS then {r.rss_all_models_mb:.0f} MB")
    lines.append("round  requests  ok  errors  rejected  p50 ms  p95 ms  max ms  peak RSS MB  RSS after MB  seconds")
    for x in r.rounds:
        lines.append(f"{x.round:>5}  {x.requests:>8}  {x.ok:>2}  {x.errors:>6}  {x.rejected:>8}  {x.p50_ms:>6.0f}  "
                     f"{x.p95_ms:>6.0f}  {x.max_ms:>6.0f}  {x.peak_rss_mb:>11.0f}  {x.rss_after_mb:>12.0f}  {x.seconds:>7.1f}")
        lines += [f"       error: {m}" for m in x.error_messages]
    lines.append(f"failed requests: {r.failed}; queue-full rejections (handled): {r.rejected}; "
                 + (f"settled RSS growth per round (median): {r.rss_growth_mb:+.0f} MB "
                    f"({'GROWS' if r.rss_grows else 'stable'}, tolerance {RSS_GROWTH_TOLERANCE_MB:.0f} MB)"
                    if not math.isnan(r.rss_growth_mb) else "memory growth not judged (it needs 3 rounds)"))
    if r.note:
        lines.append(r.note)
    lines.append("PASS" if r.passed else "FAIL")
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:

    data = {**asdict(report), "passed": report.passed}
    atomic_write_bytes(path, (json.dumps(data, indent=2, allow_nan=True) + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8, help="concurrent gradio_client sessions (default 8)")
    p.add_argument("--requests", type=int, default=10, help="requests per client per round (default 10)")
    p.add_argument("--tab", choices=[*TABS, "all"], default="sr", help="which tab's model endpoint(s) to call")
    p.add_argument("--rounds", type=int, default=4,
                   help="rounds, to see whether memory grows (3 or more; default 4)")
    p.add_argument("--url", help="a running app (default: start one on 127.0.0.1 and a free port)")
    p.add_argument("--photo", type=Path, help="the face photo to send (default: the astronaut at 256 px)")
    p.add_argument("--request-timeout", type=float, default=300.0, help="seconds one request may take")
    p.add_argument("--deadline", type=float, default=1800.0, help="seconds the whole test may take")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.add_argument("--warm-all", action="store_true",
                   help="first load every registered model of the tabs (one request per task) and report the memory")
    a = p.parse_args(argv)
    try:
        report = run_load(a.url, clients=a.clients, requests=a.requests, tab=a.tab, rounds=a.rounds, photo=a.photo,
                          request_timeout_s=a.request_timeout, deadline_s=a.deadline, warm_all=a.warm_all)
    except LoadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    if a.json:
        write_json(report, a.json)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
