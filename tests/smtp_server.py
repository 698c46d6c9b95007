"""A real SMTP server for the tests (aiosmtpd), which keeps what it received and refuses on demand.

It listens on a loopback port in a thread of its own. `defer(n)` answers the next `n` recipients
with a 4xx ("try again later"); `refuse(address)` answers that recipient with a 5xx for good;
`stop()` and `start()` take it away and bring it back on the same port (the mail relay down).
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecommerce_saga.db.embedded import free_port

DEFERRED = "451 4.3.0 Try again later"
REFUSED = "550 5.1.1 No such mailbox here"


@dataclass(frozen=True)
class Received:
    """One message as the server got it: the envelope and the parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage

    def body(self, subtype: str) -> str:
        """The `text/<subtype>` part's content."""
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None and part.get_content_subtype() == subtype, subtype
        content = part.get_content()
        assert isinstance(content, str)
        return content


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self._login = (user.encode(), password.encode())

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self._login
        return AuthResult(success=ok, handled=False)


class _Handler:
    def __init__(self, server: TestSmtpServer) -> None:
        self._server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._server.refusal_for(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert isinstance(message, EmailMessage)
        self._server.record(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 Ok: queued"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, written to `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TestSmtpServer:
    """An SMTP server on 127.0.0.1:`port`, recording every accepted message in `received`.

    With `certificate` (a cert and key file) it offers STARTTLS and requires it; with `login`
    (a user and password) it also requires that login, over TLS.
    """

    __test__ = False  # not a test class

    def __init__(
        self,
        port: int | None = None,
        certificate: tuple[Path, Path] | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._options: dict[str, Any] = {}
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
            self._options |= {"tls_context": context, "require_starttls": True}
        if login is not None:
            self._options |= {"authenticator": _Authenticator(*login), "auth_required": True}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._deferrals = 0
        self._refused: set[str] = set()
        self._controller: Controller | None = None

    def start(self) -> TestSmtpServer:
        """Listen (again) on the same port."""
        controller = Controller(_Handler(self), hostname=self.host, port=self.port, **self._options)
        deadline = time.monotonic() + 10
        while True:
            try:
                controller.start()
                break
            except (OSError, RuntimeError):  # the port is still held by the server just stopped
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self) -> dict[str, str]:
        """The shop's settings for this server (no TLS, no login: a relay on the same host)."""
        return {"SHOP_SMTP_HOST": self.host, "SHOP_SMTP_PORT": str(self.port), "SHOP_SMTP_TLS": "none"}

    def defer(self, times: int) -> None:
        """Answer the next `times` recipients with a 4xx."""
        with self._lock:
            self._deferrals = times

    def refuse(self, address: str) -> None:
        """Answer `address` with a 5xx, always."""
        with self._lock:
            self._refused.add(address.lower())

    def refusal_for(self, address: str) -> str | None:
        """The reply refusing `address` now, if any."""
        with self._lock:
            if address.lower() in self._refused:
                return REFUSED
            if self._deferrals > 0:
                self._deferrals -= 1
                return DEFERRED
        return None

    def record(self, received: Received) -> None:
        """Keep an accepted message."""
        with self._lock:
            self.received.append(received)

    def messages_to(self, address: str) -> list[Received]:
        """The messages accepted for `address`."""
        with self._lock:
            return [r for r in self.received if address.lower() in (a.lower() for a in r.recipients)]
