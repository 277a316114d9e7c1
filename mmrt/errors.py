"""The one error type for mistakes a user can fix (bad flag, file, manifest)."""


class UserError(Exception):
    """An error the user caused and can fix; the CLI prints it as one line, no traceback.

    The message names the input and what was expected, e.g.
    ``train.jsonl line 4: field 'labels': unknown class 'eleven' (expected one of classes.txt)``.
    ``detail``: what a library said underneath (an exception's text), printed after it in
    parentheses for the operator, and left out of ``summary``, which is what a server may tell a
    remote client.
    """

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(f"{message} ({detail})" if detail else message)
        self.summary = message
