"""Config files: what the TOML reader cannot take is a ConfigError naming the file, never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.config import ConfigError, load_config


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[" * 3000 + "]" * 3000, "not valid TOML: arrays or tables nested too deeply"),
        ("{a = " * 2000 + "1" + "}" * 2000, "not valid TOML: arrays or tables nested too deeply"),
        ("9" * 5000, f"not valid TOML: an integer of more than {sys.get_int_max_str_digits()} digits"),
        ('"\\x41"', "not valid TOML: Unescaped '\\' in a string (at line 2, column 13)"),
    ],
    ids=["arrays", "inline tables", "digits", "hex escape"],
)
def test_a_config_the_toml_reader_cannot_take_is_refused(tmp_path: Path, value: str, problem: str) -> None:
    """Deep nesting and an integer longer than Python converts (main: RecursionError and
    ValueError out of load_config, a traceback from ``opsdeck --config``): one error, the file's."""
    p = tmp_path / "c.toml"
    p.write_text(f"[capacity]\nagents = {value}\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(ei.value) == f"{p}: {problem}"


def test_the_same_config_with_a_number_is_read(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[capacity]\nagents = 7\n")
    assert load_config(p).capacity.agents == 7
