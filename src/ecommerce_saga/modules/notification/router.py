"""The notification module over HTTP: a customer's notifications and the saga endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from ecommerce_saga.identity import Principal
from ecommerce_saga.modules.notification.contract import (
    CancelNotification,
    Notification,
    NotificationFilter,
    NotificationNotFoundError,
    NotificationService,
    NotificationType,
    Outbox,
    OutboxMessageDetail,
    OutboxMessageNotFoundError,
    OutboxPage,
    ReadStatus,
    SendNotification,
)
from ecommerce_saga.shared.contracts import MAX_PAGE_SIZE, SAFE_ID_PATTERN, Page
from ecommerce_saga.web.auth import Authenticator, customer_scope
from ecommerce_saga.web.problems import responses

NotificationPath = Annotated[str, Path(pattern=SAFE_ID_PATTERN, description="The notification's id")]
OutboxName = Annotated[
    str,
    Path(
        pattern=r"^\d{8}T\d{6}-[A-Za-z0-9_-]{1,64}\.eml$",
        description="A message's file name in the outbox",
        examples=["20300104T120000-ntf_3f2a9c.eml"],
    ),
]


def build_router(
    service: NotificationService, auth: Authenticator, outbox: Outbox | None = None
) -> APIRouter:
    """Routes under `/api/notifications`: customers (their own), operators (any), the service (saga).

    With `outbox` (no SMTP server: mail goes to a folder), operators can read the development outbox.
    """
    router = APIRouter(prefix="/api/notifications", tags=["notifications"])
    saga = [Depends(auth.service)]
    operators = [Depends(auth.operator)]

    async def owned(notification_id: str, caller: Principal) -> Notification:
        notification = await service.get_notification(notification_id)
        if not caller.may_see(notification.customer_id):
            raise NotificationNotFoundError(f"no notification {notification_id!r}")
        return notification

    @router.get("", response_model=Page[Notification], responses=responses(401, 403))
    async def list_notifications(
        *,
        caller: Principal = Depends(auth.customer),
        customer_id: Annotated[str | None, Query(pattern=SAFE_ID_PATTERN)] = None,
        notification_type: Annotated[NotificationType | None, Query(alias="type")] = None,
        read_status: Annotated[ReadStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Page[Notification]:
        """List notifications, newest first, by customer, type and read status (a customer: their own)."""
        query = NotificationFilter(
            customer_id=customer_scope(caller, customer_id), type=notification_type, read_status=read_status,
            limit=limit, skip=skip,
        )  # fmt: skip
        return await service.list_notifications(query)

    _add_outbox_routes(router, outbox, operators)  # before "/{notification_id}", which would match

    @router.get("/{notification_id}", response_model=Notification, responses=responses(401, 403, 404))
    async def get_notification(
        *, notification_id: NotificationPath, caller: Principal = Depends(auth.customer)
    ) -> Notification:
        """A notification: its text, whether it went out, and whether it was read (a customer: their own)."""
        return await owned(notification_id, caller)

    @router.post("/{notification_id}/read", response_model=Notification, responses=responses(401, 403, 404))
    async def mark_read(
        *, notification_id: NotificationPath, caller: Principal = Depends(auth.customer)
    ) -> Notification:
        """Mark a notification read; repeating this changes nothing (a customer: their own)."""
        await owned(notification_id, caller)
        return await service.mark_read(notification_id)

    @router.post(
        "/send", response_model=Notification, dependencies=saga, tags=["saga"],
        responses=responses(401, 403, 503),
    )  # fmt: skip
    async def send(command: SendNotification) -> Notification:
        """Saga step: notify a customer about an order, once per order and type (service token)."""
        return await service.send(command)

    @router.post(
        "/cancel", response_model=Notification, dependencies=saga, tags=["saga"],
        responses=responses(401, 403, 503),
    )  # fmt: skip
    async def cancel(command: CancelNotification) -> Notification:
        """Saga compensation: tell the customer the order was cancelled (service token)."""
        return await service.cancel(command)

    return router


def _add_outbox_routes(router: APIRouter, outbox: Outbox | None, operators: list[Any]) -> None:
    """`/outbox` and `/outbox/{name}`: the development outbox, for operators."""

    @router.get(
        "/outbox", response_model=OutboxPage, dependencies=operators, tags=["operations"],
        responses=responses(401, 403),
    )  # fmt: skip
    async def list_outbox(limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50) -> OutboxPage:
        """The development outbox, newest first: every email as the mail server would get it (operators).

        `enabled` is false when mail goes to an SMTP server (`SHOP_SMTP_HOST`): there is no outbox then.
        """
        if outbox is None:
            return OutboxPage(enabled=False, folder=None, items=[], total=0)
        return await outbox.list_messages(limit)

    @router.get(
        "/outbox/{name}", response_model=OutboxMessageDetail, dependencies=operators, tags=["operations"],
        responses=responses(401, 403, 404),
    )  # fmt: skip
    async def get_outbox_message(name: OutboxName) -> OutboxMessageDetail:
        """One email of the development outbox: its headers, plain-text and HTML bodies (operators)."""
        if outbox is None:
            raise OutboxMessageNotFoundError("mail goes to an SMTP server: there is no development outbox")
        return await outbox.get_message(name)
