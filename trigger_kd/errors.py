"""Base class of every error meant for a person: the CLI prints its message, no traceback."""


class TriggerKDError(Exception):
    """What is wrong and what to do, in one message."""
