"""Workflow files: a bad file reports every error with its table and key; nothing starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.workflow_file import WorkflowFileError, load_workflow_file, parse_workflow_text

from .conftest import opsdeck_cmd
from .local_harness import task_toml, workflow_toml

REPO = Path(__file__).resolve().parent.parent

# one pool "p" offering "s", the specialization of every task_toml
POOL = """
[[pools]]
name = "p"
specializations = ["s"]
"""

BAD = """
[runtime]
heartbeat_s = 0

[[pools]]
name = "p"
specializations = ["build"]
size = 30
max_size = 4

[[workflows]]
id = "w1"
priority = 120
depends_on = ["nope"]
bogus = 1
  [[workflows.phases]]
  name = "a"
    [[workflows.phases.tasks]]
    id = "t1"
    command = []
    specialization = "test"
    timeout_s = -1
    [[workflows.phases.tasks]]
    id = "t2"
    specialization = "build"
    depends_on = ["zz"]

[[workflows]]
id = "w1"
  [[workflows.phases]]
  name = "b"
    [[workflows.phases.tasks]]
    id = "x"
    command = "echo 'unterminated"
    specialization = "build"
"""


def test_every_error_is_reported_with_its_table_and_key() -> None:
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text(BAD, "bad.toml")
    problems = ei.value.problems
    expected = [
        "runtime: key 'heartbeat_s'",
        "workflows[0] 'w1': key 'priority'",
        "workflows[0] 'w1': key 'bogus': unknown key",
        "workflows[0] 'w1'.phases[0] 'a'.tasks[0] 't1': key 'command'",
        "workflows[0] 'w1'.phases[0] 'a'.tasks[0] 't1': key 'timeout_s'",
        "workflows[0] 'w1'.phases[0] 'a'.tasks[1] 't2': key 'command': Field required",
        "workflows[1] 'w1'.phases[0] 'b'.tasks[0] 'x': key 'command'",
        "pools[0] 'p': key 'size': 30 is above max_size 4",
        "workflows[0] 'w1': key 'depends_on': unknown workflow 'nope'",
        "workflows[0] 'w1'.phases[0] 'a'.tasks[0] 't1': key 'specialization': no pool offers 'test'",
        "workflows[0] 'w1'.phases[0] 'a'.tasks[1] 't2': key 'depends_on': 'zz' is not an earlier task",
        "workflows[1] 'w1': key 'id': workflow 'w1' is defined twice",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in problems), (e, problems)
    assert len(problems) == len(expected), problems


def test_a_task_id_with_whitespace_or_a_slash_or_twice_is_refused_where_it_is() -> None:
    # Whitespace as str.isspace tells it (a no-break space, a separator control too).
    ids = ["ok\u00e9", "a\u00a0b", "tab\t", "x\x1cy", "a/b", "ok\u00e9"]
    tasks = [task_toml(tid, "true") for tid in ids]
    tasks.append(task_toml("late", "true", depends_on=["later"], specialization="none"))
    tasks.append(task_toml("later", "true"))
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text(POOL + workflow_toml("w", *tasks, phase="p"))
    at = "workflows[0] 'w'.phases[0] 'p'.tasks"
    spaces = "key 'id': task id must be without spaces or '/'"
    assert ei.value.problems == [
        *(f"{at}[{k}] {ids[k]!r}: {spaces}" for k in (1, 2, 3, 4)),
        f"{at}[5] 'ok\u00e9': key 'id': task id 'ok\u00e9' appears twice in the workflow",
        f"{at}[6] 'late': key 'depends_on': 'later' is not an earlier task of 'w'",
        f"{at}[6] 'late': key 'specialization': no pool offers 'none' (pools offer ['s'])",
    ]


def test_cycles_and_toml_syntax() -> None:
    text = (
        POOL
        + workflow_toml("a", task_toml("t", "true"), depends_on=["b"])
        + workflow_toml("b", task_toml("t", "true"), depends_on=["a"])
    )
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text(text)
    assert any("form a cycle" in p for p in ei.value.problems)
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text("[[pools]\nname=1")
    assert ei.value.problems[0].startswith("not valid TOML")


def test_specs_resolve_cwd_and_order_dependencies_first(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text(
        POOL
        + workflow_toml("later", task_toml("t", "ls -l", cwd="sub", retries=2), depends_on=["first"])
        + workflow_toml("first", task_toml("t", ["true"]))
    )
    wf, specs = load_workflow_file(f)
    assert [s.id for s in specs] == ["first", "later"]
    t = specs[1].phases[0].tasks[0]
    assert t.cwd == str((tmp_path / "sub").resolve()) and t.retries == 2 and t.command == "ls -l"
    assert specs[0].phases[0].tasks[0].cwd == str(tmp_path.resolve())
    assert wf.pools[0].size == 1 and wf.runtime.heartbeat_s == 1.0


def test_each_key_of_a_task_reaches_its_spec_and_the_spec_holds_its_own_copies(tmp_path: Path) -> None:
    # A phase's specs are validated from rows that hold the file's own lists and dicts.
    (tmp_path / "repo").mkdir()
    f = tmp_path / "w.toml"
    keys = {"cwd": "/abs", "env": {"A": "1"}, "timeout_s": 5, "retries": 1, "memory_gb": 0.25, "cpu": 0.5}
    tasks = task_toml("a", ["echo", "x"], expected_s=2, tty=True, **keys) + task_toml("b", "ls", depends_on=["a"])
    f.write_text(POOL + workflow_toml("w", tasks, workspace="worktree", repo="repo"))
    wf, specs = load_workflow_file(f)
    a, b = specs[0].phases[0].tasks
    assert (a.id, a.specialization, a.command, a.cwd, a.env, a.timeout_s, a.retries) == (
        "a",
        "s",
        ["echo", "x"],
        "/abs",
        {"A": "1"},
        5.0,
        1,
    )
    assert (a.duration_s, a.memory_gb, a.cpu, a.interactive, a.tty, a.shell) == (2.0, 0.25, 0.5, True, True, False)
    assert a.repo == b.repo == str((tmp_path / "repo").resolve())
    assert b.depends_on == ["a"] and b.cwd == str(tmp_path.resolve()) and b.interactive is False
    a.env["B"] = "2"
    assert isinstance(a.command, list)
    a.command.append("y")
    b.depends_on.append("z")  # the specs' own: the file's entries are unchanged
    entry_a, entry_b = wf.workflows[0].phases[0].tasks
    assert entry_a.env == {"A": "1"} and entry_a.command == ["echo", "x"] and entry_b.depends_on == ["a"]


@pytest.mark.slow
def test_cli_bad_file_starts_nothing(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    db = tmp_path / "x.db"
    r = subprocess.run(
        opsdeck_cmd("run", str(f), "--db", str(db), "--headless"),
        capture_output=True,
        text=True,
        timeout=120,  # a start under load: the suite's usual bound
    )
    assert r.returncode == 2
    assert "12 problem(s) in the workflow file; nothing was started" in r.stderr
    assert "workflows[0] 'w1'.phases[0] 'a'.tasks[0] 't1': key 'timeout_s'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not db.exists()
    missing = subprocess.run(
        opsdeck_cmd("run", str(tmp_path / "none.toml"), "--headless"),
        capture_output=True,
        text=True,
        timeout=120,  # a start under load: the suite's usual bound
    )
    assert missing.returncode == 2 and "no such workflow file" in missing.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").glob("*.toml")))
def test_examples_are_valid(name: str) -> None:
    wf, specs = load_workflow_file(REPO / "examples" / name)
    assert specs and wf.pools


@pytest.mark.slow
def test_cli_file_beyond_the_configured_limits_starts_nothing(tmp_path: Path) -> None:
    f = tmp_path / "big.toml"
    f.write_text(
        POOL
        + "size = 30\nmax_size = 40\n"
        + workflow_toml("huge", task_toml("t", "true"), allocation={"cpu_cores": 99, "memory_gb": 1, "agents": 1})
    )
    db = tmp_path / "x.db"
    r = subprocess.run(
        opsdeck_cmd("run", str(f), "--db", str(db), "--headless"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stderr
    assert "2 problem(s)" in r.stderr
    assert "workflows[0] 'huge': key 'allocation'" in r.stderr and "pools: key 'size': 30 agents" in r.stderr
    assert "Traceback" not in r.stderr and not db.exists()


def test_a_path_holding_a_nul_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """A task's cwd or a workflow's repo with a NUL character: refused with the others'
    problems, where it is (main: ValueError 'embedded null byte' out of load_workflow_file,
    a traceback from ``opsdeck run``, when the path was resolved)."""
    f = tmp_path / "w.toml"
    f.write_text(
        POOL
        + workflow_toml("w", task_toml("t", "true", cwd="a\u0000b"))
        + workflow_toml("v", task_toml("t", "true"), workspace="worktree", repo="r\u0000")
    )
    with pytest.raises(WorkflowFileError) as ei:
        load_workflow_file(f)
    assert ei.value.problems == [
        "workflows[0] 'w'.phases[0] 'x'.tasks[0] 't': key 'cwd': Value error, a path cannot hold a NUL character",
        "workflows[1] 'v': key 'repo': Value error, a path cannot hold a NUL character",
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[" * 3000 + "]" * 3000, "not valid TOML: arrays or tables nested too deeply"),
        ("{a = " * 2000 + "1" + "}" * 2000, "not valid TOML: arrays or tables nested too deeply"),
        ("9" * 5000, f"not valid TOML: an integer of more than {sys.get_int_max_str_digits()} digits"),
    ],
    ids=["arrays", "inline tables", "digits"],
)
def test_text_the_toml_reader_cannot_take_is_refused_not_raised(value: str, problem: str) -> None:
    """Deep nesting (tomllib recurses) and an integer longer than Python converts
    (main: RecursionError and ValueError out of parse_workflow_text, a traceback from
    ``opsdeck run``): one problem, the file's."""
    text = POOL + workflow_toml("w", task_toml("t", "true") + f"    retries = {value}\n")
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text(text, "w.toml")
    assert ei.value.problems == [problem]


def test_a_cwd_or_repo_in_a_symlink_loop_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """A relative cwd or a worktree repo that cannot be resolved (a symlink loop: main:
    RuntimeError out of load_workflow_file, a traceback from ``opsdeck run``): refused
    with where it is written and the file's path."""
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    f = tmp_path / "w.toml"
    f.write_text(POOL + workflow_toml("w", task_toml("ok", "true"), task_toml("t", "true", cwd="loop1/x")))
    with pytest.raises(WorkflowFileError) as ei:
        load_workflow_file(f)
    assert ei.value.path == str(f)
    (p,) = ei.value.problems
    assert p.startswith("workflows[0] 'w'.phases[0] 'x'.tasks[1] 't': key 'cwd': cannot be resolved: ")
    f.write_text(POOL + workflow_toml("v", task_toml("t", "true"), workspace="worktree", repo="loop2"))
    with pytest.raises(WorkflowFileError) as ei:
        load_workflow_file(f)
    (p,) = ei.value.problems
    assert p.startswith("workflows[0] 'v': key 'repo': cannot be resolved: ")


def test_a_command_or_environment_no_process_can_take_is_refused_where_it_is_written(tmp_path: Path) -> None:
    """A NUL character in a command, an environment variable named '' or 'A=B' or holding
    a NUL: refused with where it is (main: accepted, and each attempt of the task failed
    'could not start: embedded null byte' / 'illegal environment variable name')."""
    text = POOL + workflow_toml(
        "w",
        task_toml("a", ["true", "x\u0000"]),
        task_toml("b", "echo \u0000"),
        task_toml("c", "true", env={"A=B": 1}).replace("A=B = 1", '"A=B" = "v"'),
        task_toml("d", "true", env={"K": 1}).replace("K = 1", 'K = "v\\u0000"'),
        task_toml("e", "true", env={"K": 1}).replace("K = 1", '"" = "v"'),
        task_toml("f", "true", env={"K": 1}).replace("K = 1", 'A = "", "K\\u0000L" = "v"'),
        task_toml("ok", "true", env={"K": 1}).replace("K = 1", 'K = "v w=x", L = ""'),
    )
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text(text)
    assert ei.value.problems == [
        "workflows[0] 'w'.phases[0] 'x'.tasks[0] 'a': key 'command': Value error, a command cannot hold a NUL character",
        "workflows[0] 'w'.phases[0] 'x'.tasks[1] 'b': key 'command': Value error, a command cannot hold a NUL character",
        "workflows[0] 'w'.phases[0] 'x'.tasks[2] 'c': key 'env': Value error, 'A=B': a variable's name cannot be "
        "empty or hold '=' or a NUL character",
        "workflows[0] 'w'.phases[0] 'x'.tasks[3] 'd': key 'env': Value error, 'K': a variable's value cannot hold a "
        "NUL character",
        "workflows[0] 'w'.phases[0] 'x'.tasks[4] 'e': key 'env': Value error, '': a variable's name cannot be empty "
        "or hold '=' or a NUL character",
        "workflows[0] 'w'.phases[0] 'x'.tasks[5] 'f': key 'env': Value error, 'K\\x00L': a variable's name cannot be "
        "empty or hold '=' or a NUL character",
    ]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    """No file is read past the limit: a path without end such as /dev/zero is refused, not read forever."""
    from core import workflow_file

    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * workflow_file.MAX_FILE_BYTES + b"\n")
    for path in (big, Path("/dev/zero")):
        with pytest.raises(WorkflowFileError) as err:
            load_workflow_file(path)
        assert err.value.problems == ["over 16 MiB, the limit of a workflow file"]
    at_limit = tmp_path / "edge.toml"
    at_limit.write_text(POOL + "size = 1\n" + workflow_toml("w", task_toml("t", "true")))
    with at_limit.open("ab") as f:  # padded with a comment to the limit exactly: still read
        f.write(b"#" + b"x" * (workflow_file.MAX_FILE_BYTES - at_limit.stat().st_size - 2) + b"\n")
    assert at_limit.stat().st_size == workflow_file.MAX_FILE_BYTES
    _, specs = load_workflow_file(at_limit)
    assert [s.id for s in specs] == ["w"]


def test_tasks_over_the_limit_are_refused_before_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import workflow_file

    text = POOL + "size = 1\n" + workflow_toml("w", "".join(task_toml(f"t{i}", "true") for i in range(4)))
    monkeypatch.setattr(workflow_file, "MAX_FILE_TASKS", 3)
    with pytest.raises(WorkflowFileError) as err:
        parse_workflow_text(text)
    assert err.value.problems == ["workflows: 4 tasks in all, over the limit of 3 a file"]
    monkeypatch.setattr(workflow_file, "MAX_FILE_TASKS", 4)
    assert len(parse_workflow_text(text).workflows[0].phases[0].tasks) == 4


@pytest.mark.parametrize(
    ("value", "at", "problem"),
    [
        ('{ A = "\\x41" }', 20, "Unescaped '\\' in a string"),
        ('{ A = "\\e" }', 20, "Unescaped '\\' in a string"),
        ("{ A = 07:32 }", 18, "Unclosed inline table"),
        ('{ A = "1",\n  B = "2" }', 21, "Invalid initial character for a key part"),
        ('{ A = "1", }', 22, "Invalid initial character for a key part"),
    ],
    ids=["hex escape", "escape e", "time without seconds", "newline in inline table", "trailing comma"],
)
def test_what_toml_1_0_refuses_is_refused_with_its_line_and_column(value: str, at: int, problem: str) -> None:
    """What a faster parser accepts (rtoml; tomli 2.5 reads TOML 1.1) and TOML 1.0 refuses:
    refused, with the line and column of the mistake, and its TOML 1.0 form read as meant."""
    head = POOL + workflow_toml("w", task_toml("t", "true"))
    line = head.count("\n") + 1
    with pytest.raises(WorkflowFileError) as ei:
        parse_workflow_text(head + f"    env = {value}\n", "w.toml")
    assert ei.value.problems == [f"not valid TOML: {problem} (at line {line}, column {at})"]


@pytest.mark.parametrize(
    ("value", "env"),
    [('{ A = "\\u0041" }', {"A": "A"}), ('{ A = "1", B = "2" }', {"A": "1", "B": "2"})],
    ids=["unicode escape", "inline table on one line"],
)
def test_the_toml_1_0_forms_are_read(value: str, env: dict[str, str]) -> None:
    wf = parse_workflow_text(POOL + workflow_toml("w", task_toml("t", "true")) + f"    env = {value}\n", "w.toml")
    assert wf.workflows[0].phases[0].tasks[0].env == env


def test_the_toml_parser_is_the_pinned_one() -> None:
    """tomli 2.3.0, the pinned one: tomli 2.5 reads TOML 1.1, the same file would mean
    something else."""
    from importlib.metadata import version

    import tomli

    from core import config

    assert version("tomli") == "2.3.0"
    assert config._loads is tomli.loads
