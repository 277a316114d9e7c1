"""TLS on a real server with tritonclient: server TLS, mutual TLS with client certificates, and
a renewed certificate taken up on reload (SIGHUP) without a restart. The test makes its own CA."""

import datetime
import ssl
import urllib.request

import pytest
import tritonclient.grpc as tc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tritonclient.utils import InferenceServerException

from mmrt.benchmarks.client import triton_inputs
from mmrt.runtime.frontends.server import Server, ServerOptions

pytestmark = pytest.mark.integration

INPUTS = {"text": b"counting to seven"}


class Authority:
    """A certificate authority that issues PEM files into ``folder``."""

    def __init__(self, folder, name):
        self.folder, self.key = folder, ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = self._build(self.name, self.key.public_key(), ca=True)
        self.pem = self._write(f"{name}.crt", self.cert.public_bytes(serialization.Encoding.PEM))

    def _build(self, subject, public_key, ca=False, dns=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def _write(self, name, data):
        path = self.folder / name
        path.write_bytes(data)
        return path

    def issue(self, name, dns=None):
        """(certificate, key) files for ``name``, signed by this authority."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = self._build(subject, key.public_key(), dns=dns)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return (self._write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{name}.key", key_pem))


def answers(address, ca, cert=None, key=None) -> bool:
    client = tc.InferenceServerClient(address, ssl=True, root_certificates=str(ca),
                                      private_key=key and str(key), certificate_chain=cert and str(cert))
    try:
        return client.infer("mmrt", triton_inputs(INPUTS, ["text"])).as_numpy("SCORES").shape == (1, 10)
    except InferenceServerException:
        return False


def rest_answers(address, ca, cert=None, key=None) -> bool:
    """The same over REST (Python's ssl, not gRPC's): the server's health through HTTPS."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(f"https://{address}/v2/health/ready", context=context, timeout=10) as r:
            return r.status == 200
    except OSError:  # ssl.SSLError and URLError are OSErrors
        return False


def both_answer(s, ca, cert=None, key=None) -> tuple[bool, bool]:
    return answers(s.address, ca, cert, key), rest_answers(s.http_address, ca, cert, key)


def start(tiny_bundle, **tls):
    return Server(tiny_bundle, ServerOptions(host="localhost", port=0, http_port=0, metrics_port=None,
                                             threads=1, **tls)).start()


def test_tls_round_trip_and_plaintext_refused(tiny_bundle, tmp_path):
    ca = Authority(tmp_path, "ca")
    cert, key = ca.issue("server", dns="localhost")
    s = start(tiny_bundle, tls_cert=cert, tls_key=key)
    try:
        assert both_answer(s, ca.pem) == (True, True)
        with pytest.raises(InferenceServerException):
            tc.InferenceServerClient(s.address).is_server_live()
        with pytest.raises(OSError):  # plain HTTP to the TLS port
            urllib.request.urlopen(f"http://{s.http_address}/v2/health/ready", timeout=10)
    finally:
        s.stop(0)


def test_mutual_tls_answers_only_clients_with_a_certificate_from_its_ca(tiny_bundle, tmp_path):
    ca, stranger = Authority(tmp_path, "ca"), Authority(tmp_path, "stranger")
    cert, key = ca.issue("server", dns="localhost")
    s = start(tiny_bundle, tls_cert=cert, tls_key=key, tls_client_ca=ca.pem)
    try:
        assert both_answer(s, ca.pem, *ca.issue("rig-7")) == (True, True)
        assert both_answer(s, ca.pem) == (False, False)  # no client certificate
        assert both_answer(s, ca.pem, *stranger.issue("intruder")) == (False, False)
    finally:
        s.stop(0)


def test_a_renewed_certificate_is_taken_up_on_reload(tiny_bundle, tmp_path):
    old, new = Authority(tmp_path, "old-ca"), Authority(tmp_path, "new-ca")
    cert, key = old.issue("server", dns="localhost")
    s = start(tiny_bundle, tls_cert=cert, tls_key=key)
    try:
        assert both_answer(s, old.pem) == (True, True) and both_answer(s, new.pem) == (False, False)
        renewed_cert, renewed_key = new.issue("server-renewed", dns="localhost")
        cert.write_bytes(renewed_cert.read_bytes())  # renewed in place, as certbot or a rig agent does
        key.write_bytes(renewed_key.read_bytes())
        s.tls.reload()  # what SIGHUP does
        assert both_answer(s, new.pem) == (True, True) and both_answer(s, old.pem) == (False, False)
        key.write_text("half-written")  # a broken renewal keeps the certificate that works
        s.tls.reload()
        assert both_answer(s, new.pem) == (True, True)
    finally:
        s.stop(0)
