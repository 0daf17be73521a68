"""Shared CLI plumbing: the error boundary, dual-spelling flags, and app constructors.

Every flag is declared once, in the recipe's underscore spelling (``--save_dir``); the context's
``token_normalize_func`` maps each option name typed on the command line to that spelling, so
the kebab alias (``--save-dir``) works everywhere while help and Tab completion show one name per
flag (two names per flag no longer fit an 80-column help table: ``--batch_size,--ba...``).
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from genoforge.console import stderr
from genoforge.errors import CheckpointError, GenoforgeError, InputError

F = TypeVar("F", bound=Callable[..., Any])



def snake_case_option(name: str) -> str:
    """An option name as declared: ``save-dir`` -> ``save_dir`` (click strips the dashes first)."""
    return name.replace("-", "_")


CONTEXT: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    # Inherited by every subcommand's context; applies to option names only, never to values.
    "token_normalize_func": snake_case_option,
}


def debug_enabled() -> bool:
    return os.environ.get("GENOFORGE_DEBUG", "") not in ("", "0", "false", "no")


def report_error(exc: BaseException) -> None:
    """One red line on stderr (the full traceback only with GENOFORGE_DEBUG=1)."""
    if debug_enabled():
        stderr.print(escape("".join(traceback.format_exception(exc))), soft_wrap=True)
    message = " ".join(str(exc).split("\n")).strip() or type(exc).__name__
    stderr.print(f"[bold red]Error:[/bold red] {escape(message)}", soft_wrap=True)


def boundary(func: F) -> F:
    """Wrap a command: GenoforgeError -> one line + exit 1; Ctrl-C -> exit 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GenoforgeError as exc:
            report_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stderr.print("[yellow]Interrupted.[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def flag(name: str, *extra: str) -> list[str]:
    """A flag's declared name, the recipe's ``--save_dir`` (plus ``extra`` names such as ``-o``).

    The kebab spelling ``--save-dir`` is accepted through :data:`CONTEXT`'s normaliser, not
    declared, so help shows one spelling per flag.
    """
    return ["--" + snake_case_option(name), *extra]


def require_file(path: Path | None) -> None:
    """Fail fast on a missing input file, before a command imports torch (seconds)."""
    if path is None:
        return
    if not path.exists():
        raise InputError("file not found; check the path", path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path)


def require_model_dir(model_dir: Path) -> None:
    """Fail fast unless ``model_dir`` holds a config.json (the message of genoforge.model.io)."""
    config = model_dir / "config.json"
    if not config.is_file():
        raise CheckpointError(
            f"{config}: not found; is {model_dir} a model directory (from `genoforge model init`)?"
        )


def new_app(name: str, help: str, epilog: str | None = None) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help,
        epilog=epilog,
        no_args_is_help=True,
        context_settings=CONTEXT,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        add_completion=False,
    )


def examples(*lines: str) -> str:
    """An Examples epilog; each line is shown as a shell command."""
    body = "\n\n".join(f"  $ {line}" for line in lines)
    return f"[bold]Examples[/bold]\n\n{body}"
