"""The SMTP sender: each notification as one email to a mail server (a relay), over aiosmtplib.

How a delivery ends decides what happens to the notification:

- the server accepted the message (2xx after DATA): SENT, with the server's reply;
- it refused it for good — a 5xx for the recipient, the sender or the message: `DeliveryRefusedError`,
  the notification is FAILED with the reply and never sent again (the order is not affected);
- anything that may pass — no connection, a timeout, a dropped connection, a 4xx ("try again
  later"), a failed login or TLS negotiation, a 530/534/535/538 (login or TLS required: the
  relay's configuration, not the message, is wrong): `DeliveryDeferredError`, the notification
  stays PENDING and the saga retries.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from enum import StrEnum

import aiosmtplib

from ecommerce_saga.modules.notification.contract import Notification
from ecommerce_saga.modules.notification.mail import MailRenderer
from ecommerce_saga.modules.notification.sender import DeliveryDeferredError, DeliveryRefusedError


class SmtpSecurity(StrEnum):
    """How the connection to the mail server is protected."""

    STARTTLS = "starttls"
    """Plain connection upgraded with STARTTLS, which the server must offer (port 587)."""
    TLS = "tls"
    """TLS from the first byte (port 465)."""
    NONE = "none"
    """No TLS: only for a relay on the same host or pod network."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the mail server."""

    host: str
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_seconds: float = 10.0
    ca_file: str | None = None


_CONFIGURATION_CODES = frozenset({530, 534, 535, 538})
"""5xx replies about the session, not the message: a login or TLS is required, or was refused."""


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


class SmtpSender:
    """`NotificationSender` over SMTP: one connection per message, closed after it."""

    def __init__(self, config: SmtpConfig, renderer: MailRenderer) -> None:
        self._config = config
        self._renderer = renderer
        self._tls_context = ssl.create_default_context(cafile=config.ca_file)

    def screen(self, notification: Notification) -> str | None:
        """See `NotificationSender.screen`: an email needs an address."""
        return self._renderer.screen(notification)

    async def send(self, notification: Notification) -> str:
        """Send the notification's email; return the server's reply to it."""
        message = self._renderer.render(notification)
        config = self._config
        try:
            _, reply = await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.security is SmtpSecurity.TLS,
                start_tls=config.security is SmtpSecurity.STARTTLS,
                tls_context=self._tls_context if config.security is not SmtpSecurity.NONE else None,
                timeout=config.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusals = exc.recipients
            replies = "; ".join(_reply(r.code, r.message) for r in refusals)
            if refusals and all(r.code >= 500 for r in refusals):
                raise DeliveryRefusedError(replies) from None
            raise DeliveryDeferredError(replies) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryDeferredError(f"login refused: {_reply(exc.code, exc.message)}") from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500 and exc.code not in _CONFIGURATION_CODES:
                raise DeliveryRefusedError(_reply(exc.code, exc.message)) from None
            raise DeliveryDeferredError(_reply(exc.code, exc.message)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # unreachable, timed out, dropped, no TLS
            raise DeliveryDeferredError(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # an address the client cannot put in an envelope
            raise DeliveryRefusedError(f"address not sendable: {exc}") from None
        return _reply(250, reply)
