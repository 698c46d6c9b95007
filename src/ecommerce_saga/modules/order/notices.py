"""What the order sagas tell the customer: notification commands built from the stored order.

The saga's input carries ids; the order record carries what a message says — the contact email
(the order's `contact_email`, or the `email` of the customer's token when the order was placed),
the items at their catalog prices, the total, the delivery and the payment — so each notice is
built from the record when it is sent. The carrier comes from the saga's shipping step.
"""

from __future__ import annotations

from ecommerce_saga.modules.notification.contract import (
    NotificationType,
    OrderFacts,
    OrderLineFacts,
    SendNotification,
)
from ecommerce_saga.modules.order.repository import OrderRecord
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.contract import PaymentMethodKind


def _payment(doc: OrderRecord) -> str | None:
    summary = doc.payment
    if summary.method is PaymentMethodKind.PAYPAL:
        return "PayPal"
    if summary.last4:
        return f"{(summary.brand or 'card').title()} ending {summary.last4}"
    return None


def order_facts(doc: OrderRecord, kind: NotificationType, carrier: str | None = None) -> OrderFacts:
    """What a `kind` notice says about the order `doc`."""
    return OrderFacts(
        customer_name=doc.shipping_address.name[:200] or None,
        items=[
            OrderLineFacts(name=line.name[:200] or line.product_id, quantity=line.quantity,
                           line_total_cents=line.line_total_cents)
            for line in doc.items[:50]
        ],
        total_cents=doc.total_cents,
        currency=doc.currency,
        shipping_method=doc.shipping_method.value,
        carrier=carrier or None,
        tracking_number=doc.tracking_number or None,
        estimated_delivery=doc.estimated_delivery,
        payment=_payment(doc),
        failure_reason=doc.failure_reason.value if doc.failure_reason else None,
        refund_cents=doc.total_cents if kind is NotificationType.ORDER_CANCELLED else None,
    )  # fmt: skip


async def notice(
    orders: OrderTracker,
    kind: NotificationType,
    order_id: str,
    customer_id: str,
    *,
    key: str,
    attempt: int,
    carrier: str | None = None,
) -> SendNotification:
    """The command that tells the customer of `order_id` about it (a `kind` notice).

    Raises whatever reading the order raises: the saga step retries.
    """
    doc = await orders.recent(order_id)  # no read for an order this process is working on
    details: dict[str, str | int] = {}
    facts, recipient = None, None
    if doc is not None:
        facts, recipient = order_facts(doc, kind, carrier), doc.contact_email
        if doc.failure_reason is not None and kind is NotificationType.ORDER_FAILED:
            details["reason"] = doc.failure_reason.value
    return SendNotification(
        order_id=order_id, customer_id=customer_id, type=kind, idempotency_key=key,
        attempt=attempt, details=details, recipient=recipient, order=facts,
    )  # fmt: skip
