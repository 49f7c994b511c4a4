"""The console in a real browser: Debian's chromium driven by Playwright.

``opsdeck web --demo`` starts a host for the demo fleet; the page (served by
textual-serve) runs a console attached to it. The test reads the screen the browser
was sent (the websocket's terminal bytes fed to a terminal emulator): the console
follows the host's sequence number, a second tab gets its own console on the same
host, ``?`` brings up the help, and a PNG of the page is saved. Every request the
page makes is logged: none may leave 127.0.0.1, and chromium resolves no other
host name at all. Stopping ``opsdeck web`` stops the host it started, and the log
verifies (one writer all along).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyte
import pytest
from playwright.sync_api import Page, Route, WebSocket, sync_playwright

from core.host.lease import current_holder

from .conftest import REPO, opsdeck_cmd, wait_for

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = REPO / "screenshots" / "web-help.png"
"""Rewritten only with OPSDECK_UPDATE_SCREENSHOTS=1: a test run leaves the checkout as it was."""
LOCAL = ("127.0.0.1",)


class WebConsole:
    """A running ``opsdeck web`` and the address it printed."""

    def __init__(self, proc: subprocess.Popen[str], url: str, db: Path) -> None:
        self.proc = proc
        self.url = url
        self.db = db


@pytest.fixture
def web_console(tmp_path: Path, cli_env: dict[str, str]) -> Iterator[WebConsole]:
    db = tmp_path / "web.db"
    proc = subprocess.Popen(
        opsdeck_cmd("web", "--demo", "--db", str(db), "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env,
        start_new_session=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"open (http://\S+)", line)
            if m:
                url = m.group(1)
        assert url is not None, f"opsdeck web printed no address: {proc.stderr.read() if proc.stderr else ''}"
        # Keep draining both pipes: a full pipe would block opsdeck web (and the host it
        # started, which shares them) on a write, and it could then never exit.
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=lambda f=stream: [None for _ in f], daemon=True).start()
        yield WebConsole(proc, url, db)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class Screen:
    """What the browser's terminal shows, rebuilt from the websocket's frames."""

    def __init__(self, ws: WebSocket) -> None:
        q = parse_qs(urlsplit(ws.url).query)
        self.screen = pyte.Screen(int(q.get("width", ["80"])[0]), int(q.get("height", ["24"])[0]))
        self.stream = pyte.ByteStream(self.screen)
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes):
            self.stream.feed(payload)

    def _sent(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            msg = json.loads(payload)
            if msg[0] == "resize":
                self.screen.resize(msg[1]["height"], msg[1]["width"])

    def text(self) -> str:
        return "\n".join(self.screen.display)


def shown_seq(screen: Screen) -> int | None:
    """The sequence number in the console's status line."""
    m = re.search(r"\bseq (\d+)", screen.text())
    return int(m.group(1)) if m else None


def committed_head(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def wait_in_page(page: Page, cond, timeout: float = 90.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    """conftest's wait_for pausing with the page's own wait, so that the synchronous
    Playwright API handles the page's events between checks."""
    wait_for(cond, what, timeout, poll=0.2, sleep=lambda s: page.wait_for_timeout(s * 1000))


@pytest.mark.slow
def test_console_in_chromium_shows_help_and_reaches_no_outside_host(web_console: WebConsole, tmp_path: Path) -> None:
    shot = SCREENSHOT if os.environ.get("OPSDECK_UPDATE_SCREENSHOTS") == "1" else tmp_path / "web-help.png"
    holder = current_holder(web_console.db)
    assert holder is not None and holder.pid not in (None, web_console.proc.pid), "a host holds the database"
    seen: list[str] = []
    outside: list[str] = []

    def route(r: Route) -> None:
        host = urlsplit(r.request.url).hostname
        seen.append(r.request.url)
        if host in LOCAL:
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-background-networking",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ],
        )
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            ctx.route("**/*", route)
            screens: list[Screen] = []
            ctx.on("page", lambda p: p.on("websocket", lambda ws: (seen.append(ws.url), screens.append(Screen(ws)))))
            page = ctx.new_page()
            page.goto(web_console.url)
            page.wait_for_selector("body.-first-byte", state="attached", timeout=120_000)
            wait_in_page(page, lambda: bool(screens) and shown_seq(screens[0]) is not None, what="the console")
            assert "opsdeck key bindings" not in screens[0].text()
            # The header names the host once it has drawn since the link opened (its own tick).
            wait_in_page(page, lambda: f"attached to host pid {holder.pid}" in screens[0].text(), what="the host named")
            # The console follows the live host: it catches up with what the host commits after it.
            first = shown_seq(screens[0]) or 0
            wait_in_page(page, lambda: committed_head(web_console.db) > first, what="the host to commit more")
            target = committed_head(web_console.db)
            wait_in_page(
                page, lambda: (shown_seq(screens[0]) or 0) >= target, what=f"the console to reach seq {target}"
            )

            # Without the token the page is refused; a second tab with it gets its own console on the same host.
            assert ctx.request.get(web_console.url.split("?")[0]).status == 401
            other = ctx.new_page()
            other.goto(web_console.url)
            wait_in_page(other, lambda: len(screens) > 1 and shown_seq(screens[1]) is not None, what="a second console")
            wait_in_page(
                other, lambda: f"attached to host pid {holder.pid}" in screens[1].text(), what="the host named"
            )
            other.close()

            page.click("#terminal")
            page.keyboard.press("?")
            wait_in_page(page, lambda: "opsdeck key bindings" in screens[0].text(), what="the help screen")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert outside == [], f"the page asked for outside hosts: {outside}"
    assert any(u.startswith("ws://127.0.0.1:") for u in seen), seen
    assert all(urlsplit(u).hostname in LOCAL for u in seen), seen
    assert shot.stat().st_size > 10_000

    # Stopping opsdeck web stops the host it started: the lease is free again.
    web_console.proc.send_signal(signal.SIGTERM)
    assert web_console.proc.wait(60) == 0
    wait_for(
        lambda: current_holder(web_console.db) is None,
        "the host opsdeck web started to end (its lease free)",
        60,
        poll=0.2,
    )
    # One writer all along (the browser's console was a client): the chain is whole.
    r = subprocess.run(opsdeck_cmd("verify", "--db", str(web_console.db)), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
