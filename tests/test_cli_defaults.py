"""The "[default: X]" each flag's help shows is its config dataclass's default (the one source).

`genoforge tune --help` is checked against TuneConfig and `genoforge bake --help` against
BakeConfig: a flag whose name is a field of the dataclass maps to that field. The help is rendered
300 columns wide so that each option is one row of the table and no "[default: X]" is wrapped.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

from genoforge.baking.bake import BakeConfig
from genoforge.cli.app import app
from genoforge.training.config import TuneConfig

runner = CliRunner()

ROW = re.compile(r"^│\s+(?:\*\s+)?(--[a-z][a-z0-9_]*)\s(.*)$")
CONTINUED = re.compile(r"^│\s{10,}\S")  # a row's next line: blank flag column
DEFAULT = re.compile(r"\[default: ([^\]]*)\]")

# Flags of a dataclass field whose help shows no default, and why; any other field flag must show one.
NO_DEFAULT_SHOWN = {
    "tune": {
        # Switches, off by default: the help says what turning one on does.
        "log_memory", "memwatch", "gradient_checkpointing", "compile", "skip_memory_check",
        "resume",  # "" is a fresh run; the help names the values that resume
    },
    "bake": {
        "raw_dir", "output_dir", "tokenizer",  # required (as flags or in --config); "" is "not given"
        "keep_going", "strict", "overwrite",  # switches, off by default
    },
}
# Fields whose default is None, which the help describes in words rather than as a value.
NONE_DESCRIBED = {
    "bake": {"taxa": "the packaged configs/taxa.toml", "species": "all"},
}
CONFIGS = {"tune": TuneConfig, "bake": BakeConfig}


def _help_rows(command: str) -> dict[str, str]:
    """Flag -> its row of the Options table (help text included) in `genoforge COMMAND --help`."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0, result.output
    rows: dict[str, str] = {}
    flag = None
    for line in result.output.splitlines():
        match = ROW.match(line)
        if match:
            flag = match.group(1)
            assert flag not in rows, f"{flag} listed twice"
            rows[flag] = match.group(2).rstrip("│ ")
        elif flag and CONTINUED.match(line):  # a wrapped help text, should 300 columns not do
            rows[flag] += " " + line.strip("│ ")
        else:
            flag = None
    return rows


def _declared_flags(command: str) -> set[str]:
    """The long option names the command declares (what the help table must list)."""
    click_command = typer.main.get_command(app).commands[command]
    return {name for param in click_command.params for name in param.opts if name.startswith("--")}


def _field_defaults(command: str) -> dict[str, object]:
    """Field -> its dataclass default, for the fields that are flags of the command."""
    config = CONFIGS[command]()
    flags = _declared_flags(command)
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f"--{f.name}" in flags}


def _as_value(shown: str, default: object) -> object:
    """The shown text read as a value of the default's type (so 1e-4 and 0.0001 are equal)."""
    if isinstance(default, bool):
        return {"True": True, "False": False}.get(shown, shown)
    if isinstance(default, (int, float)):
        try:
            return type(default)(shown)
        except ValueError:
            return shown
    return shown


@pytest.mark.parametrize("command", ["tune", "bake"])
def test_help_lists_every_declared_flag(command: str) -> None:
    # the parser's check: it reads a row for each flag (and --help, which click adds)
    assert set(_help_rows(command)) == _declared_flags(command) | {"--help"}


@pytest.mark.parametrize("command", ["tune", "bake"])
def test_help_default_of_each_field_flag_is_the_dataclass_default(command: str) -> None:
    rows = _help_rows(command)
    defaults = _field_defaults(command)
    assert len(defaults) >= 15, f"only {sorted(defaults)} of {CONFIGS[command].__name__} are flags?"
    wrong = {}
    for name, default in defaults.items():
        match = DEFAULT.search(rows[f"--{name}"])
        if match is None:
            continue  # the next test says which flags may show none
        shown = match.group(1)
        if default is None:
            expected = NONE_DESCRIBED.get(command, {}).get(name)
            if shown != expected:
                wrong[name] = (shown, f"None (described as {expected!r})")
        elif _as_value(shown, default) != default:
            wrong[name] = (shown, default)
    assert not wrong, f"`genoforge {command} --help` (shown, dataclass default): {wrong}"


@pytest.mark.parametrize("command", ["tune", "bake"])
def test_every_field_flag_shows_a_default_unless_listed(command: str) -> None:
    rows = _help_rows(command)
    without = {name for name in _field_defaults(command) if not DEFAULT.search(rows[f"--{name}"])}
    # Exact: a new flag without a default fails here, and so does a stale entry of the list.
    assert without == NO_DEFAULT_SHOWN[command]
