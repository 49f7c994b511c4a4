"""``GET /metrics`` of a live host subprocess, parsed with prometheus-client's parser.

The host runs the demo fleet with its clock paused; the test moves it with
``/host advance`` (each answer comes after its events are committed), so every
scrape can be compared with the store exactly.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import opsdeck_cmd, wait_for

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the host's unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


class LiveHost:
    def __init__(self, proc: subprocess.Popen[str], db: Path, base: str, token: str, socket_path: str) -> None:
        self.socket = socket_path
        self.proc = proc
        self.db = db
        self.base = base
        self.token = token

    def get(self, path: str) -> tuple[int, str, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()

    def post(self, command: str, token: str | None) -> tuple[int, dict]:  # type: ignore[type-arg]
        req = urllib.request.Request(
            self.base + "/v1/commands",
            data=json.dumps({"command": command, "actor": "test"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def command(self, text: str) -> dict:  # type: ignore[type-arg]
        status, body = self.post(text, self.token)
        assert status == 200 and body["status"] == "success", body
        return body

    def scrape(self) -> Samples:
        status, ctype, text = self.get("/metrics")
        assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
        out: Samples = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out

    def log_count(self, type_: str, upto: int) -> int:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM events WHERE type=? AND seq<=?", (type_, upto)).fetchone()[0]

    def head(self) -> int:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as con:
            return con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]


@pytest.fixture
def live_host(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[LiveHost]:
    db = tmp_path / "fleet.db"
    proc = subprocess.Popen(
        opsdeck_cmd("serve", "--demo", "--db", str(db), "--listen", "127.0.0.1:0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
    )
    try:
        lease = Path(f"{db}.lease")

        def listening() -> dict | None:  # type: ignore[type-arg]
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                info = json.loads(lease.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            return info if info.get("listen") else None

        info = wait_for(listening, "the host to listen (its lease names the address)", 120, poll=0.1)
        token = Path(f"{db}.token").read_text().strip()
        host = LiveHost(proc, db, f"http://{info['listen']}", token, info["socket"])
        host.command("/host clock pause")
        yield host
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.mark.slow
def test_metrics_of_a_live_host_equal_its_log(live_host: LiveHost) -> None:
    h = live_host
    # Readable without a token on TCP; commands are not.
    status, body = h.post("/host status", token=None)
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"
    assert h.get("/v1/health")[0] == 200

    h.command("/host advance 1h")
    m1 = h.scrape()
    head = h.head()
    assert m1["opsdeck_events_total"][()] == head
    done1 = m1["opsdeck_workflow_completed_total"][()]
    assert done1 == h.log_count("WORKFLOW_COMPLETED", head) > 0
    assert m1["opsdeck_task_completed_total"][()] == h.log_count("TASK_COMPLETED", head)
    assert m1["opsdeck_clock_info"][(("clock", "virtual"), ("runtime", "sim"))] == 1

    h.command("/host drill agent-cascade")  # an incident to count
    h.command("/host advance 30m")
    m2 = h.scrape()
    head2 = h.head()
    assert m2["opsdeck_events_total"][()] == head2 > head
    assert m2["opsdeck_task_completed_total"][()] > m1["opsdeck_task_completed_total"][()]
    assert m2["opsdeck_task_completed_total"][()] == h.log_count("TASK_COMPLETED", head2)
    assert m2["opsdeck_workflow_completed_total"][()] == h.log_count("WORKFLOW_COMPLETED", head2) >= done1
    opened = h.log_count("INCIDENT_OPENED", head2)
    assert opened >= 1 and m2["opsdeck_incidents_opened_total"][()] == opened
    # Histograms observed the tasks that ran while the host was up.
    assert (
        m2["opsdeck_task_execution_seconds_count"][()]
        >= m2["opsdeck_task_completed_total"][()] - m1["opsdeck_task_completed_total"][()]
    )
    assert m2["opsdeck_store_commit_seconds_count"][()] > m1["opsdeck_store_commit_seconds_count"][()]
    # Open incidents by kind and plans by state are the projection's, as /incident list reports them.
    listed = h.command("/incident list")["result"]["incidents"]
    m3 = h.scrape()
    for kind in {i["scenario"] for i in listed}:
        live = sum(1 for i in listed if i["scenario"] == kind and i["status"] in ("open", "recovering"))
        assert m3["opsdeck_incidents_open"][(("kind", kind),)] == live
    proposed = sum(1 for i in listed for p in i["plans"] if p["state"] == "proposed")
    assert m3["opsdeck_recovery_plans_pending"][(("state", "proposed"),)] == proposed

    # The unix socket serves the same text (no token there either).
    conn = UnixHTTPConnection(h.socket)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200
    fams = {f.name for f in text_string_to_metric_families(resp.read().decode())}
    conn.close()
    assert {"opsdeck_events", "opsdeck_task_schedule_to_start_seconds", "opsdeck_agent_heartbeat_age_seconds"} <= fams
