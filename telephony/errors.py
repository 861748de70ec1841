"""The error the switch's operations raise for a request they refuse."""


class SwitchError(ValueError):
    """A request the switch refuses; `code` is the control API's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
