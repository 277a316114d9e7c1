"""Who may call what, as Triton's restricted API categories (--grpc-restricted-protocol,
--http-restricted-api): inference and metadata need the inference token (when one is set); the
admin category, model control (repository index, load, unload) and shared memory (status,
register, unregister), needs the admin token, which the inference token never stands in for; with
no admin token set, admin calls come only from this machine (a loopback or Unix-socket peer).
Shared memory is for processes on this machine: its calls and tensors that name a region are
refused from any other peer unless ``remote_shm``, and unregistering every region always is.
Health passes everything: an orchestrator must read NOT_SERVING, not an error. No torch.
"""

from __future__ import annotations

import hmac
import ipaddress
import urllib.parse
from dataclasses import dataclass

from mmrt.runtime.engine.status import InferError, Status

BEARER = b"Bearer "


def is_loopback(address: str | None) -> bool:
    """Whether an IP address (a peer's, or a bind's) is this machine's loopback (an IPv4 one
    mapped into IPv6 too). Anything else, no address or a wildcard included, is not."""
    if address == "localhost":
        return True
    try:
        ip = ipaddress.ip_address((address or "").strip("[]"))
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def is_local_grpc_peer(peer: str) -> bool:
    """gRPC's peer string: 'ipv4:127.0.0.1:5000', 'ipv6:%5B::1%5D:5000', 'unix:/run/x.sock' ..."""
    kind, _, address = urllib.parse.unquote(peer).partition(":")
    if kind in ("unix", "unix-abstract"):
        return True
    return kind in ("ipv4", "ipv6") and is_loopback(address.rpartition(":")[0])


def _raw(sent: str | bytes | None) -> bytes:
    if sent is None:
        return b""
    return sent if isinstance(sent, bytes) else sent.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Caller:
    """What the server knows of one call's client: its Authorization value and whether it is on
    this machine."""
    authorization: str | bytes | None
    local: bool


class Access:
    def __init__(self, token: str | None = None, admin_token: str | None = None, remote_shm: bool = False):
        self.token = BEARER + token.encode() if token else None
        self.admin_token = BEARER + admin_token.encode() if admin_token else None
        self.remote_shm = remote_shm

    def _is(self, expected: bytes | None, sent: str | bytes | None) -> bool:
        return expected is not None and hmac.compare_digest(_raw(sent), expected)

    def authenticate(self, sent: str | bytes | None) -> None:
        """Any call past health: the inference token or the admin token, when either is set."""
        if self.token is None:
            return  # no inference token: only the admin calls are restricted (``admin``)
        if not (self._is(self.token, sent) or self._is(self.admin_token, sent)):
            why = "missing bearer token" if not sent else "wrong bearer token"
            raise InferError(Status.UNAUTHENTICATED, why)

    def admin(self, caller: Caller, what: str) -> None:
        """A model-control or shared-memory call: the admin token, or with none set, a local peer."""
        if self.admin_token is not None:
            if not self._is(self.admin_token, caller.authorization):
                raise InferError(Status.PERMISSION_DENIED, f"{what} needs the admin token (the server's "
                                 f"--admin-token-file); the inference token is not accepted for it")
        elif not caller.local:
            raise InferError(Status.PERMISSION_DENIED, f"{what} is taken only from this machine (the server "
                             f"has no --admin-token-file)")

    def shared_memory(self, caller: Caller, what: str, every_region: bool = False) -> None:
        """A shared-memory call: an admin's, from this machine (or anywhere with ``remote_shm``,
        except unregistering every region)."""
        self.admin(caller, what)
        if not caller.local and (every_region or not self.remote_shm):
            raise InferError(Status.PERMISSION_DENIED, f"{what} is taken only from this machine" + (
                "" if every_region else " (the server's --allow-remote-shm, with --admin-token-file, lets "
                "other machines in)"))

    def shm_tensors(self, caller: Caller) -> bool:
        """Whether this caller's tensors may name shared-memory regions."""
        return caller.local or self.remote_shm
