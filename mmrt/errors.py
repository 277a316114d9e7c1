"""The one error type for mistakes a user can fix (bad flag, file, manifest)."""


class UserError(Exception):
    """An error the user caused and can fix; the CLI prints it as one line, no traceback.

    The message names the input and what was expected, e.g.
    ``train.jsonl line 4: field 'labels': unknown class 'eleven' (expected one of classes.txt)``.
    """
