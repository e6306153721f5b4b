"""Mistakes a user can fix, and the exit codes the CLI gives them: one message, no traceback."""

from __future__ import annotations

EXIT_USER_ERROR = 2  # bad input of any kind: a config value, a path, a checkpoint, data files
EXIT_NON_FINITE = 3  # the loss diverged; checkpoints/last.pt holds the last good state


class UserError(Exception):
    """A problem in the user's input or environment; the message names the culprit and the fix."""


def report_user_error(error: BaseException) -> None:
    """Print `error: <message>` to stderr, unwrapped so paths stay whole."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, emoji=False)  # `cuda:x:` in a message stays text
    console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)


def what_raised(error: BaseException) -> str:
    """`ValueError: its first line` (or just the type when it says nothing): how a failure in the user's own code
    is quoted in the one-line message that names whose code it was."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
