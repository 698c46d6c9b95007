"""The development outbox: with no SMTP server configured, each email is a `.eml` file in a folder.

`OutboxSender` writes the message a mail server would have received; `FileOutbox` lists and parses
those files for the console's Outbox view. A file's name is fixed by its notification (creation
time and id), and it is written to a temporary name and renamed, so a repeated attempt replaces
the message rather than adding a second one, and a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from ecommerce_saga.modules.notification.contract import (
    MailHeader,
    Notification,
    OutboxMessage,
    OutboxMessageDetail,
    OutboxMessageNotFoundError,
    OutboxPage,
)
from ecommerce_saga.modules.notification.mail import MailRenderer

_NAME = re.compile(r"^\d{8}T\d{6}-[A-Za-z0-9_-]{1,64}\.eml$")


def file_name(notification: Notification) -> str:
    """The outbox file of a notification: `20300104T120000-ntf_….eml`."""
    return f"{notification.created_at:%Y%m%dT%H%M%S}-{notification.notification_id}.eml"


class OutboxSender:
    """`NotificationSender` into a folder of `.eml` files."""

    def __init__(self, folder: Path, renderer: MailRenderer) -> None:
        self.folder = folder
        self._renderer = renderer

    def screen(self, notification: Notification) -> str | None:
        """See `NotificationSender.screen`: an email needs an address."""
        return self._renderer.screen(notification)

    async def send(self, notification: Notification) -> str:
        """Write the notification's email; return where it went."""
        message = self._renderer.render(notification)
        name = file_name(notification)
        await asyncio.to_thread(self._write, name, message.as_bytes(policy=policy.SMTP))
        return f"saved to the development outbox: {self.folder / name}"

    def _write(self, name: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        temporary.write_bytes(data)
        os.replace(temporary, self.folder / name)


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as source:
        message = BytesParser(policy=policy.default).parse(source)
    assert isinstance(message, EmailMessage)  # noqa: S101 - the default policy makes EmailMessages
    return message


def _date(message: EmailMessage) -> datetime | None:
    value = message.get("Date")
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None


def _summary(path: Path, message: EmailMessage) -> OutboxMessage:
    def header(name: str) -> str | None:
        value = message.get(name)
        return None if value is None else str(value)

    return OutboxMessage(
        name=path.name, message_id=header("Message-ID"), recipient=header("To"),
        subject=header("Subject"), date=_date(message), size=path.stat().st_size,
    )  # fmt: skip


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


class FileOutbox:
    """`Outbox` on the folder an `OutboxSender` writes to."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def list_messages(self, limit: int) -> OutboxPage:
        """See `Outbox.list_messages`."""
        return await asyncio.to_thread(self._list, limit)

    def _list(self, limit: int) -> OutboxPage:
        names = sorted(
            (p.name for p in self.folder.glob("*.eml") if _NAME.match(p.name)), reverse=True
        ) if self.folder.is_dir() else []  # fmt: skip
        items = []
        for name in names[:limit]:
            try:
                items.append(_summary(self.folder / name, _parse(self.folder / name)))
            except FileNotFoundError:
                continue  # removed meanwhile
        return OutboxPage(enabled=True, folder=str(self.folder), items=items, total=len(names))

    async def get_message(self, name: str) -> OutboxMessageDetail:
        """See `Outbox.get_message`."""
        return await asyncio.to_thread(self._get, name)

    def _get(self, name: str) -> OutboxMessageDetail:
        path = self.folder / name
        if not _NAME.match(name) or not path.is_file():
            raise OutboxMessageNotFoundError(f"no message {name!r} in the outbox")
        message = _parse(path)
        return OutboxMessageDetail(
            **_summary(path, message).model_dump(),
            headers=[MailHeader(name=key, value=str(value)) for key, value in message.items()],
            text=_body(message, "plain"),
            html=_body(message, "html"),
        )
