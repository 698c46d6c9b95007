"""An order's answer goes out as soon as the order is settled, before its confirmation is sent.

The confirmation is best effort and comes after the pivot: the request waiting for the order
must not wait for it too. Counted by what happened first, not timed: the answer's start (seen
around the app) and the notification service's send of the confirmation (seen around it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecommerce_saga.modules.notification.contract import Notification, SendNotification
from ecommerce_saga.saga import SagaEngine
from tests.integration.inprocess import add_product, one_item_order, shop_in_process


async def test_the_answer_goes_out_before_the_confirmation_is_sent(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    seen: list[str] = []

    def watched(app: ASGIApp) -> ASGIApp:
        async def watching(scope: Scope, receive: Receive, send: Send) -> None:
            async def noting(message: Message) -> None:
                if message["type"] == "http.response.start" and scope["path"] == "/api/orders":
                    seen.append("answered")
                await send(message)

            await app(scope, receive, noting)

        return watching

    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "answer", wrap=watched) as (client, app):
        await add_product(client, "sku-answer", quantity=5)
        notifications = app.state.container.notifications
        send = notifications.send

        async def sending(command: SendNotification) -> Notification:
            seen.append(f"sending {command.type.value}")
            return await send(command)

        vars(notifications)["send"] = sending  # the order saga holds this same service
        placed = await client.post("/api/orders", json=one_item_order("sku-answer", "cust-answer"))
        assert placed.status_code == 201, placed.text
        assert placed.json()["status"] == "COMPLETED"
        engine: SagaEngine = app.state.container.engine
        saga = await engine.wait(placed.json()["saga_id"], timeout=30)

    assert saga.status.value == "COMPLETED"
    assert seen == ["answered", "sending ORDER_CONFIRMED"]
