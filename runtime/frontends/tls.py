"""TLS for the server: a certificate and key, optionally a CA whose client certificates are
required (mutual TLS), re-read on ``reload()`` (SIGHUP) so a renewed certificate takes effect
without a restart. New connections get the new files; open ones keep theirs. A reload that
fails (a missing or half-written file) keeps the old certificate and says why."""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

import grpc

from mmrt.errors import UserError

log = logging.getLogger(__name__)


class TlsFiles:
    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None):
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.stale = threading.Event()  # set by reload(); the next handshake re-reads the files
        self.contexts: list[ssl.SSLContext] = []  # REST's, re-loaded in place by reload()

    def _configuration(self):
        ca = self.client_ca.read_bytes() if self.client_ca else None
        return grpc.ssl_server_certificate_configuration([(self.key.read_bytes(), self.cert.read_bytes())],
                                                         root_certificates=ca)

    def credentials(self) -> grpc.ServerCredentials:
        try:
            first = self._configuration()
        except OSError as e:
            raise UserError(f"TLS: cannot read {e.filename} ({e.strerror})") from None
        return grpc.dynamic_ssl_server_credentials(first, self._fetch,
                                                   require_client_authentication=self.client_ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        """The same files for the REST listener (Python's ssl), re-loaded by ``reload()``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self._load(context)
        except (OSError, ssl.SSLError) as e:
            raise UserError(f"TLS: cannot load {self.cert} / {self.key} ({e})") from None
        self.contexts.append(context)
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)

    def reload(self) -> None:
        self.stale.set()
        for context in self.contexts:  # new handshakes use the new files; a failure keeps the old ones
            try:
                self._load(context)
            except (OSError, ssl.SSLError) as e:
                log.warning("TLS reload for REST failed (%s); keeping the previous certificate", e)

    def _fetch(self):
        """Called by gRPC before each handshake: a new configuration after a reload, else None."""
        if not self.stale.is_set():
            return None
        self.stale.clear()
        try:
            configuration = self._configuration()
        except Exception as e:  # noqa: BLE001 - keep serving with the certificate that works
            log.warning("TLS reload failed (%s); keeping the previous certificate", e)
            return None
        log.info("TLS: reloaded %s%s", self.cert, "" if self.client_ca is None else f" and {self.client_ca}")
        return configuration
