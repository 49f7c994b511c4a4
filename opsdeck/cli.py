"""The ``opsdeck`` command line: one subcommand module per verb under ``subcommands/``.

Every failure a user can cause (bad config, bad database, bad input) ends in a
one-line message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

# Only light modules here: the errors a verb may raise, each declared in a module that
# imports nothing heavy (the engine, the store, pydantic load with the verb that uses them,
# after the console's first frame for ``console`` and ``demo``); and the collector's policy.
from core.collector import end_start_hold
from core.config_errors import ConfigError
from core.engine_errors import EngineError
from core.host.errors import HostBadAnswer, HostError, HostGone, HostRefused
from core.host.lease import LeaseHeld
from core.private import TRUST_ENV, PrivateError
from core.store_errors import StoreError

from . import __version__
from .output import BAD_ANSWER

# Each module has ``register(subparsers)`` and sets ``func`` on its parser (and ``early``,
# what it starts as soon as its command line is read, before the config is).
SUBCOMMANDS = [
    "console",
    "demo",
    "events",
    "logs",
    "verify",
    "repair",
    "run",
    "serve",
    "exec",
    "script",
    "help",
    "drill",
    "web",
]


def _named_verb(argv: Sequence[str]) -> str | None:
    """The subcommand argv names, if it names one: a command line that names its verb
    loads only that verb's module (each imports what it runs: about 1 s of CPU for all).
    One that names none opens the console, so it loads only ``console`` too, unless it
    asks for the help (which lists every verb)."""
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            next(it, None)
        elif arg in ("-h", "--help"):
            return None
        elif not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return "console"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` just that verb (the rest are not loaded)."""
    parser = argparse.ArgumentParser(
        prog="opsdeck",
        description="A terminal operations console for multi-agent workflow orchestration. "
        "Without a subcommand it opens the console on the default database.",
    )
    parser.add_argument("--version", action="version", version=f"opsdeck {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config file (capacity, thresholds, intervals, keys, theme)"
    )
    parser.add_argument(
        "--trust-owner",
        action="store_true",
        help="use a database (and the files beside it) that another user owns or others may write: "
        "for shared setups you trust; recorded in the log (also OPSDECK_TRUST_OWNER=1)",
    )
    parser.set_defaults(early=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in [only] if only else SUBCOMMANDS:
        importlib.import_module(f"opsdeck.subcommands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    parser = build_parser(_named_verb(given))
    args = parser.parse_args(given)
    if args.command is None:
        args = parser.parse_args([*given, "console"])  # the options given are the top-level ones
    try:
        if args.early is not None:
            args.early(args)
        if args.trust_owner or (args.config and _config_trusts_owner(args.config)):
            os.environ[TRUST_ENV] = "1"  # child processes (agent hosts, web consoles) trust alike
        return int(args.func(args) or 0)
    except (ConfigError, StoreError, PrivateError, HostError) as exc:
        print(f"opsdeck: {exc}", file=sys.stderr)
        return 2
    except LeaseHeld as exc:
        print(refusal(exc), file=sys.stderr)
        return 2
    except HostBadAnswer as exc:  # a HostGone: named first
        print(f"opsdeck: {exc}; the host is not known to be gone", file=sys.stderr)
        return BAD_ANSWER
    except (HostGone, HostRefused) as exc:
        print(f"opsdeck: {exc}", file=sys.stderr)
        return 1
    except EngineError as exc:
        print(f"opsdeck: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        end_start_hold()  # a verb's start hold (its ``early``) ends with it, whichever way


def entry() -> int:
    """The program (``python -m opsdeck``, the ``opsdeck`` script): :func:`main`, then the
    heap frozen (:func:`core.collector.before_exit`) and the process ended at once
    (:func:`end_now`) unless a thread still runs (the usual exit joins it). Tests call ``main``."""
    from core.collector import before_exit

    code = main()
    before_exit()
    if threading.active_count() == 1:
        end_now(code)
    return code


def end_now(code: int) -> NoReturn:
    """End the process after a verb: its atexit handlers run and the standard streams are
    flushed, as at any exit; the interpreter's teardown, which frees every module and
    object one by one (10-50 ms after a headless run of 5,000 tasks on this machine),
    does not. By then the verb has closed what it opened (the store, its agent hosts and
    launcher, the lease)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _config_trusts_owner(path: str) -> bool:
    from core.config import load_config  # pydantic: only when a config file is given

    return load_config(path).storage.trust_owner


def refusal(exc: LeaseHeld) -> str:
    """Why a second host may not open a database, and how to reach the one that runs it."""
    h = exc.holder
    db = exc.db
    return (
        f"opsdeck: {db} is already run by {h.describe()}; nothing was changed.\n"
        f"  attach to it instead: opsdeck console --db {db}   |   opsdeck exec --db {db} '/host status'"
        f"   |   opsdeck events --db {db} --follow"
    )
