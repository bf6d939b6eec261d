"""Errors a request's input can cause, importable from anywhere in threats without a cycle."""


class InvalidInput(Exception):
    """Bad input from a user or client; the API answers 400 with `field` and the reason."""

    def __init__(self, field, detail, valid=None):
        super().__init__(detail)
        self.field, self.detail, self.valid = field, detail, valid
