"""Signals from the control plane to a running task."""


class RunPaused(Exception):
    """Stop the run here and leave the task `paused` for `reason` (e.g. "budget")."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
