"""Shared CLI plumbing: the error boundary, dual-spelling flags, and app constructors."""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from genoforge.console import stderr
from genoforge.errors import GenoforgeError

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"]}


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
    """Both spellings of a flag: the recipe's ``--save_dir`` and the kebab ``--save-dir``."""
    snake = "--" + name.replace("-", "_")
    kebab = "--" + name.replace("_", "-")
    names = [snake] if snake == kebab else [snake, kebab]
    return names + list(extra)


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
