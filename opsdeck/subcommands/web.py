"""``opsdeck web``: the console in a browser (textual-serve), on the live host of a database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ..paths import default_db, live_demo_db, new_demo_db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "web",
        help="serve the console in a browser",
        description="Serve the operations console in a browser (textual-serve): each browser connection runs "
        "a console attached to the live host of the database; when no host holds it, one is started "
        "(--demo: the demo fleet) and stopped on exit. Binds 127.0.0.1 unless told otherwise; any other "
        "address needs --token-file.",
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        help=f"database file (default {default_db()}; with --demo the live demo, else a new one, as opsdeck demo)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--demo", action="store_true", help="start the demo fleet when no host holds the database")
    p.add_argument(
        "--token-file",
        metavar="FILE",
        type=Path,
        help="0600 file holding the page's token (required off 127.0.0.1; default: a fresh token per run)",
    )
    p.set_defaults(func=run)


def _bind(host: str, port: int) -> socket.socket:
    from ..web import WebError

    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise WebError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def _serve(args: argparse.Namespace, db: Path, config: Path | None, token: str, sock: socket.socket) -> int:
    from aiohttp import web

    from ..web import ConsoleServer, console_command
    from ..web.host_process import ensure_host  # textual-serve and the control plane: only when serving

    host_proc = await ensure_host(db, demo=args.demo, config=config)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    url = f"http://{shown}:{bound[1]}/"
    server = ConsoleServer(
        console_command(db, config), host=str(bound[0]), port=bound[1], token=token, title=f"opsdeck · {db.name}"
    )
    runner = web.AppRunner(await server._make_app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        who = "the demo fleet" if host_proc is not None and args.demo else "its host"
        how = f"started (pid {host_proc.pid})" if host_proc is not None else "already running"
        print(f"opsdeck web: console of {db} ({who}, {how})", flush=True)
        print(f"opsdeck web: open {url}?token={token}", flush=True)
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if host_proc is not None:
            waits.append(asyncio.ensure_future(host_proc.wait()))
        _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        if host_proc is not None and host_proc.returncode is not None and not stop.is_set():
            print(f"opsdeck web: the host of {db} exited ({host_proc.returncode}); stopping", file=sys.stderr)
            return 1
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        consoles = len(server.consoles)
        await server.stop_consoles()  # every tab's console ends with the server, within about 1.5 s
        if consoles:
            print(f"opsdeck web: stopped {consoles} console(s)", flush=True)
        with contextlib.suppress(Exception):
            await runner.cleanup()
        if host_proc is not None:
            await host_proc.stop()
            print(
                f"opsdeck web: stopped the host it started (pid {host_proc.pid}, exit {host_proc.returncode})",
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    from ..web import WebError, choose_token

    config = Path(args.config) if args.config else None
    try:  # refusals first: a refused start leaves nothing behind
        token = choose_token(args.host, args.token_file)
        sock = _bind(args.host, args.port)
    except WebError as exc:
        print(f"opsdeck: {exc}", file=sys.stderr)
        return 2
    if args.db:
        db = Path(args.db)
    elif args.demo:
        db = live_demo_db() or new_demo_db()
    else:
        db = default_db()
    try:
        return asyncio.run(_serve(args, db, config, token, sock))
    except WebError as exc:
        print(f"opsdeck: {exc}", file=sys.stderr)
        return 2
    finally:
        sock.close()
