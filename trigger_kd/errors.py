"""Base class of every error meant for a person: the CLI prints its message, no traceback."""


class TriggerKDError(Exception):
    """What is wrong and what to do, in one message."""


def one_line(exc: BaseException) -> str:
    """Another library's exception as one line (its type and first line): for a message that must be one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
