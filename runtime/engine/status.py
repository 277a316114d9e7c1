"""The runtime's one error type: a status and a message naming the input and what was expected.

The engine raises it; the gRPC layer maps the status to a gRPC code in one place
(``mmrt.runtime.frontends.servicer.GRPC_CODES``) and streams put the message in ``error_message``.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path


class Status(Enum):
    INVALID_ARGUMENT = "invalid argument"
    NOT_FOUND = "not found"
    RESOURCE_EXHAUSTED = "resource exhausted"
    UNAVAILABLE = "unavailable"
    CANCELLED = "cancelled"  # the client cancelled, or its deadline passed: nobody reads the answer
    DEADLINE_EXCEEDED = "deadline exceeded"  # the server's own time limit (an idle stream, a slow upload)
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission denied"  # authenticated, but not for this call (or not from there)
    FAILED_PRECONDITION = "failed precondition"  # the server is not set up for this call (a flag says how)
    ALREADY_EXISTS = "already exists"
    INTERNAL = "internal"


class InferError(Exception):
    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


INTERNAL_MESSAGE = "internal error (the server's log has the details)"  # never a Python exception's text


def invalid(message: str) -> InferError:
    return InferError(Status.INVALID_ARGUMENT, message)


SHOWN_CHARS = 64  # a client string echoed in a message or a log line is cut to this


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters: client strings go into messages and logs, and
    a megabyte-long model name must not become a megabyte-long error or log line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


_PATH = re.compile(r"(?<![\w.])/[^\s'\"():,]+")


def public(message: str, root: Path) -> str:
    """A server-side message made fit for a client: paths under ``root`` (the model repository)
    relative to it, any other absolute path replaced by '<server path>'."""
    inside = re.escape(str(root).rstrip("/")) + r"/?"
    message = re.sub(inside, "", message)
    return _PATH.sub("<server path>", message)
