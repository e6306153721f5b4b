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
