"""The program ends at once after its verb (``cli.end_now``): its atexit handlers run and
what it printed is flushed, with the verb's exit code; a thread still running is joined
by the usual exit instead, not cut off."""

from __future__ import annotations

from .conftest import run_python

PROBE = """
import atexit, sys, threading, time
from opsdeck import cli

def verb(argv=None):
    print("PRINTED")  # buffered: stdout is a pipe
    if sys.argv[1] == "thread":
        threading.Thread(target=lambda: (time.sleep(0.2), print("THREAD DONE"))).start()
    return 3

cli.main = verb
atexit.register(lambda: print("ATEXIT"))
sys.exit(cli.entry())
"""


def test_the_program_ends_with_its_output_flushed_and_its_atexit_handlers_run() -> None:
    out = run_python(PROBE, "alone")
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines() == ["PRINTED", "ATEXIT"]


def test_a_thread_still_running_is_joined_not_cut_off() -> None:
    out = run_python(PROBE, "thread")
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines() == ["PRINTED", "THREAD DONE", "ATEXIT"]
