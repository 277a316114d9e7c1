"""The runtime's one error type: a status and a message naming the input and what was expected.

The engine raises it; the gRPC layer maps the status to a gRPC code in one place
(``mmrt.runtime.servicer.GRPC_CODES``) and streams put the message in ``error_message``.
"""

from __future__ import annotations

from enum import Enum


class Status(Enum):
    INVALID_ARGUMENT = "invalid argument"
    NOT_FOUND = "not found"
    RESOURCE_EXHAUSTED = "resource exhausted"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class InferError(Exception):
    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def invalid(message: str) -> InferError:
    return InferError(Status.INVALID_ARGUMENT, message)
