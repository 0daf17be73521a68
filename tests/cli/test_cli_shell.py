"""The CLI shell: help everywhere, --version, exit codes, the one-line error boundary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genoforge import __version__
from genoforge.cli.app import app

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    """Every command path in the app, e.g. ['tokens', 'init'], found by walking the command tree."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command, prefix: list[str]) -> None:  # type: ignore[no-untyped-def]
        sub = getattr(command, "commands", None)
        if sub:
            for name, child in sorted(sub.items()):
                paths.append(prefix + [name])
                walk(child, prefix + [name])

    walk(root, [])
    return paths


def test_root_help_lists_groups_and_examples() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "tokens" in result.output
    assert "quickstart" in result.output
    assert "Examples" in result.output


def test_short_help_flag_works() -> None:
    result = runner.invoke(app, ["-h"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_examples(path: list[str]) -> None:
    result = runner.invoke(app, path + ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert "Examples" in result.output, f"`genoforge {' '.join(path)} --help` has no Examples epilog"


def test_version_is_eager() -> None:
    result = runner.invoke(app, ["--version", "tokens", "nonsense"])
    assert result.exit_code == 0
    assert result.output.strip() == f"genoforge {__version__}"


def test_unknown_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["quickstart", "--no-such-flag"])
    assert result.exit_code == 2


def _run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("GENOFORGE_DEBUG", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "genoforge", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_domain_error_is_one_line_exit_1_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tokenizer.json"
    tokens_file = tmp_path / "t.txt"
    tokens_file.write_text("ACGT\n")
    proc = _run_cli("tokens", "append", str(tokens_file), str(missing))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error:")
    assert str(missing.name) in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_debug_env_shows_traceback(tmp_path: Path) -> None:
    tokens_file = tmp_path / "t.txt"
    tokens_file.write_text("ACGT\n")
    proc = _run_cli(
        "tokens", "append", str(tokens_file), str(tmp_path / "missing.json"),
        env_extra={"GENOFORGE_DEBUG": "1"},
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr


def test_python_m_entry_point_prints_version() -> None:
    proc = _run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"genoforge {__version__}"


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from genoforge.cli.app import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_boundary_maps_interrupt_to_130_and_errors_to_1(capsys: pytest.CaptureFixture[str]) -> None:
    from genoforge.cli._common import boundary
    from genoforge.errors import GffFormatError

    @boundary
    def interrupted() -> None:
        raise KeyboardInterrupt

    @boundary
    def bad_input() -> None:
        raise GffFormatError("CDS end 5120 < start 5300 (seqid chr2)", "genes.gff3", 1042)

    with pytest.raises(typer.Exit) as exc_info:
        interrupted()
    assert exc_info.value.exit_code == 130
    with pytest.raises(typer.Exit) as exc_info:
        bad_input()
    assert exc_info.value.exit_code == 1
    err = capsys.readouterr().err
    assert "genes.gff3:1042: CDS end 5120 < start 5300 (seqid chr2)" in err


def test_sigint_during_tune_saves_a_checkpoint_and_exits_130(tmp_path: Path) -> None:
    """Ctrl-C in the middle of training: exit 130, a resumable checkpoint on disk, no traceback."""
    import signal
    import time

    workdir = tmp_path / "qs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "genoforge", "quickstart", "--workdir", str(workdir), "--steps", "5000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 240
    # Interrupt only once training has taken a few optimizer steps (the tune step logs them).
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("step "):
            break
    assert any(line.startswith("step ") for line in seen), "".join(seen)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=240)
    err = "".join(seen) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    checkpoints = sorted((workdir / "runs" / "debug").glob("step-*"))
    assert checkpoints, "no checkpoint was saved on SIGINT"
    assert (checkpoints[-1] / "model.safetensors").exists()
