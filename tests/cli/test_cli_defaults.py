"""The "[default: X]" each flag's help shows is its config dataclass's default (the one source).

`genoforge tune --help` is checked against TuneConfig, `genoforge bake --help` against BakeConfig
and `genoforge predict --help` against PredictConfig: a flag whose name is a field of the
dataclass maps to that field. The help is rendered 300 columns wide so that no "[default: X]" is
wrapped (a longer help text continues on the next lines of its row, which the parser joins).
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import typer
from typer.testing import CliRunner

from genoforge.baking.bake import BakeConfig
from genoforge.cli.app import app
from genoforge.inference.device import CPU_BATCH_SIZE, CUDA_BATCH_SIZE
from genoforge.inference.predict_config import (
    DEFAULT_WINDOW_SIZE,
    MAX_NEW_TOKENS_MULTIPLE,
    MIN_MAX_NEW_TOKENS,
    WINDOWLESS_MAX_NEW_TOKENS,
    PredictConfig,
)
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
    "predict": {
        # None: settled at run time from the model's record and the device; the help says how.
        "window_size", "overlap", "max_new_tokens", "cuda_graphs",
        "taxon",  # the alternative to --species; none unless given
    },
}
# Fields whose default is None, which the help describes in words rather than as a value.
NONE_DESCRIBED = {
    "bake": {"taxa": "the packaged configs/taxa.toml", "species": "all"},
    "predict": {"seqids": "all", "species": "all baked species pooled"},
}
CONFIGS = {"tune": TuneConfig, "bake": BakeConfig, "predict": PredictConfig}
MIN_FIELD_FLAGS = {"tune": 15, "bake": 15, "predict": 13}  # a parser that finds fewer is broken
COMMANDS = list(CONFIGS)


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


def _as_value(shown: str, default: object, name: str = "") -> object:
    """The shown text read as a value of the default's type (so 1e-4 and 0.0001 are equal); an
    on/off switch shows the name of its default side (``signal_grammar``, ``no_signal_grammar``)."""
    if isinstance(default, bool):
        return {"True": True, "False": False, name: True, f"no_{name}": False}.get(shown, shown)
    if isinstance(default, (int, float)):
        try:
            return type(default)(shown)
        except ValueError:
            return shown
    return shown


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_declared_flag(command: str) -> None:
    # the parser's check: it reads a row for each flag (and --help, which click adds)
    assert set(_help_rows(command)) == _declared_flags(command) | {"--help"}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_default_of_each_field_flag_is_the_dataclass_default(command: str) -> None:
    rows = _help_rows(command)
    defaults = _field_defaults(command)
    assert len(defaults) >= MIN_FIELD_FLAGS[command], (
        f"only {sorted(defaults)} of {CONFIGS[command].__name__} are flags?")
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
        elif _as_value(shown, default, name) != default:
            wrong[name] = (shown, default)
    assert not wrong, f"`genoforge {command} --help` (shown, dataclass default): {wrong}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_flag_shows_a_default_unless_listed(command: str) -> None:
    rows = _help_rows(command)
    without = {name for name in _field_defaults(command) if not DEFAULT.search(rows[f"--{name}"])}
    # Exact: a new flag without a default fails here, and so does a stale entry of the list.
    assert without == NO_DEFAULT_SHOWN[command]


def test_predict_flags_parse_to_the_dataclass_defaults() -> None:
    # predict has no --config layer: a flag left out takes its default, which must be the field's
    # (None included: "settle it from the model"), whether or not the help shows it.
    click_command = typer.main.get_command(app).commands["predict"]
    parsed = {param.name: param.default for param in click_command.params}
    defaults = _field_defaults("predict")
    assert {name: parsed[name] for name in defaults} == defaults


def test_predict_help_words_name_the_current_constants() -> None:
    # The defaults the help describes in words quote the constants that decide them.
    rows = _help_rows("predict")
    assert f"0: {CPU_BATCH_SIZE} on CPU, {CUDA_BATCH_SIZE} on CUDA" in rows["--batch_size"]
    assert f"; {DEFAULT_WINDOW_SIZE} for a model without one" in rows["--window_size"]
    tokens = rows["--max_new_tokens"]
    assert f"a multiple of {MAX_NEW_TOKENS_MULTIPLE}, at least {MIN_MAX_NEW_TOKENS}" in tokens
    assert f"at most {WINDOWLESS_MAX_NEW_TOKENS} for a model" in tokens
