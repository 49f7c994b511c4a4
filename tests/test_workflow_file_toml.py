"""A workflow file's TOML is read by rtoml, and by tomllib where rtoml refuses it
(``core.workflow_file.parse_toml``): the same tables as tomllib reads, and a mistake
reported in tomllib's words."""

from __future__ import annotations

import tomllib

import pytest

from core.workflow_file import WorkflowFileError, parse_toml, parse_workflow_text

from .conftest import REPO
from .local_harness import header, task_toml, workflow_toml

Q3, A3 = '"' * 3, "'" * 3
TRICKY = (
    'title = "esc \\" \\\\ \\t \\u00e9 \\U0001F600"\n'
    "literal = 'C:\\path\\no escapes'\n"
    f"multi = {Q3}\nline one\n  line two \\\n  joined{Q3}\n"
    f"raw_multi = {A3}\nkeep \\n as is{A3}\n"
    "ints = [0, -17, 1_000, 0xff, 0o17, 0b101, 9223372036854775807]\n"
    "floats = [3.14, -0.0, 1e10, 6.626e-34, inf, -inf]\n"
    "bools = [true, false]\n"
    'mixed = [[1, 2], ["a", "b"], { x = 1 }]\n'
    "dotted.key.here = 1\n"
    '"quoted key" = "v"\n'
    "[table]\ninline = { a = 1, b = { c = [1, 2] } }\n"
    "[[arr]]\nn = 1\n[[arr]]\nn = 2\n[arr.sub]\ndeep = true\n"
)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").glob("*.toml")))
def test_the_examples_read_as_tomllib_reads_them(name: str) -> None:
    text = (REPO / "examples" / name).read_text(encoding="utf-8")
    assert parse_toml(text) == tomllib.loads(text)


def test_a_file_of_every_kind_of_value_and_a_big_one_read_as_tomllib_reads_them() -> None:
    assert parse_toml(TRICKY) == tomllib.loads(TRICKY)
    big = header() + workflow_toml("w", *(task_toml(f"t{i:05d}", ["true"], cpu=0.01) for i in range(2000)))
    assert parse_toml(big) == tomllib.loads(big)


def test_an_integer_past_64_bits_is_read_as_tomllib_reads_it() -> None:
    text = "n = 99999999999999999999\n"  # rtoml refuses it: tomllib's reading stands
    assert parse_toml(text) == tomllib.loads(text) == {"n": 99999999999999999999}


def test_a_mistake_is_reported_in_tomllib_s_words() -> None:
    text = 'a = 1\nb = "unterminated\n'
    with pytest.raises(tomllib.TOMLDecodeError) as want:
        tomllib.loads(text)
    with pytest.raises(WorkflowFileError) as got:
        parse_workflow_text(text, "f.toml")
    assert got.value.problems == [f"not valid TOML: {want.value}"]
