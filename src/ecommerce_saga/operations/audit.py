"""The consistency audit: read every module's records and check that they tell one story.

A saga-based system keeps no global transaction; what it promises is that, once every saga has
settled, the modules agree. This audit checks that promise on a database, read-only:

- every saga is final; none is parked (``REQUIRES_ATTENTION``) or still in flight;
- every order's status matches its saga, and what the other modules hold for it: a COMPLETED
  order has a held reservation, exactly one captured charge of its total, a scheduled shipment
  and its confirmation; a FAILED or CANCELLED order holds no stock, no money and no courier;
- money, from the payment gateway's own ledger: no order is charged twice, no charge exists
  without its payment record, and a refund never exceeds its charge;
- stock: no product is negative, and each product's ``reserved`` count is exactly the sum of the
  reservations held against it, with no hold or release left half-done (a product's mark of a
  move its reservation's status records is not half-done: the marks are unset lazily);
- no order received two notifications of the same kind.

It reads each module through the read port the module owns (`InventoryBooks`, `PaymentBooks`,
... in each `contract.py`, implemented by each module's `books.py` on its own collections), and
the sagas through the store's census (`SagaStore.statuses`): one whole pass over each
collection, as stored, so it sees what the services would hide. The composition root builds
the `AuditSources` (`bootstrap.audit_sources`). Run it with ``ecommerce-saga audit`` (exit
status 1 when it finds a violation), or call `audit`. Inventory, money and notifications are
judged only when no saga is in flight: in-flight sagas legitimately hold partial effects.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Protocol

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, computed_field

from ecommerce_saga.modules.inventory.contract import InventoryBooks, ReservationEntry, StockEntry
from ecommerce_saga.modules.notification.contract import NotificationBooks
from ecommerce_saga.modules.order.contract import OrderBooks, OrderEntry
from ecommerce_saga.modules.payment.contract import GatewayEntry, PaymentBooks, PaymentEntry
from ecommerce_saga.modules.shipping.contract import ShipmentEntry, ShippingBooks
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import responses

_FINAL_SAGA = {"COMPLETED", "COMPENSATED"}
_ACTIVE_SAGA = {"RUNNING", "COMPENSATING"}
_SETTLED_ORDER = {"COMPLETED", "FAILED", "CANCELLED"}
_NO_MONEY = {None, "DECLINED", "REFUNDED", "VOIDED"}
_NO_STOCK = {None, "REJECTED", "RELEASED"}
_NO_COURIER = {None, "CANCELLED"}


class SagaCensus(Protocol):
    """What the audit reads of the sagas: every saga's stored status (`SagaStore.statuses`)."""

    async def statuses(self) -> dict[str, str | None]:
        """Every saga's id and status as stored."""
        ...


@dataclass(frozen=True)
class AuditSources:
    """Where the audit reads: each module's read port, and the order module's saga store."""

    sagas: SagaCensus
    orders: OrderBooks
    inventory: InventoryBooks
    payments: PaymentBooks
    shipping: ShippingBooks
    notifications: NotificationBooks


class Finding(BaseModel):
    """One broken rule: a stable `code`, the record it concerns, and what is wrong."""

    model_config = ConfigDict(frozen=True)

    code: str = Field(examples=["money.orphan_charge"])
    subject: str = Field(description="The order, product or charge concerned.", examples=["ord_42"])
    detail: str = Field(examples=["2 captured charges"])

    def __str__(self) -> str:
        return f"{self.code} {self.subject}: {self.detail}"


class AuditReport(BaseModel):
    """What the audit read and found."""

    counts: dict[str, int] = Field(
        default_factory=dict,
        description="Records read, by collection, and orders by status (`orders.COMPLETED`, ...).",
    )
    in_flight: list[str] = Field(
        default_factory=list,
        description="Sagas still RUNNING or COMPENSATING: not a violation, but the books are not closed.",
    )
    parked: list[str] = Field(
        default_factory=list, description="Sagas parked for an operator (REQUIRES_ATTENTION)."
    )
    violations: list[Finding] = Field(default_factory=list)
    stock: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Each product's `available` and `reserved`, as read."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def settled(self) -> bool:
        """True when every saga is final: nothing in flight, nothing parked."""
        return not self.in_flight and not self.parked

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when every saga settled and no rule is broken."""
        return self.settled and not self.violations

    def add(self, code: str, subject: str, detail: str) -> None:
        """Record a violation."""
        self.violations.append(Finding(code=code, subject=subject, detail=detail))

    def summary(self) -> str:
        """A human-readable report, one finding per line."""
        lines = [
            "records: " + ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items())),
            f"sagas in flight: {len(self.in_flight)}; parked: {len(self.parked)}",
        ]
        lines += [f"  in flight: {saga_id}" for saga_id in self.in_flight[:20]]
        lines += [f"  parked: {saga_id}" for saga_id in self.parked[:20]]
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  {finding}" for finding in self.violations]
        lines.append("audit: OK" if self.ok else "audit: FAILED")
        return "\n".join(lines)


@dataclass
class _Books:
    """Every record the audit reads, indexed the way the rules look them up."""

    sagas: dict[str, str | None]
    orders: dict[str, OrderEntry]
    reservations: dict[str, ReservationEntry]
    products: list[StockEntry]
    payments: dict[str, PaymentEntry]
    ledger: list[GatewayEntry]
    shipments: dict[str, ShipmentEntry]
    notifications: dict[str, Counter[str]]

    @classmethod
    async def read(cls, sources: AuditSources) -> _Books:
        """The sagas first: a saga seen final made every effect it records before its last save,
        so the reads after it find them all. Read later, a saga settling during the reads (its
        last step a notice, say) would be seen final with that effect missing."""
        sagas = await sources.sagas.statuses()
        notifications: dict[str, Counter[str]] = defaultdict(Counter)
        for notice in await sources.notifications.notifications():
            notifications[notice.order_id][notice.type] += 1
        return cls(
            sagas=sagas,
            orders={order.order_id: order for order in await sources.orders.orders()},
            reservations={held.order_id: held for held in await sources.inventory.reservations()},
            products=await sources.inventory.stock(),
            payments={payment.order_id: payment for payment in await sources.payments.payments()},
            ledger=await sources.payments.gateway_ledger(),
            shipments={shipment.order_id: shipment for shipment in await sources.shipping.shipments()},
            notifications=notifications,
        )


async def audit(sources: AuditSources) -> AuditReport:
    """Audit the books `sources` reads (see the module docstring for the rules)."""
    books = await _Books.read(sources)
    report = AuditReport()
    report.counts = {
        "sagas": len(books.sagas),
        "orders": len(books.orders),
        "products": len(books.products),
        "payments": len(books.payments),
        "shipments": len(books.shipments),
        "gateway transactions": len(books.ledger),
    }
    for status, count in Counter(order.status for order in books.orders.values()).items():
        report.counts[f"orders.{status}"] = count
    _check_sagas(books, report)
    for order in books.orders.values():
        _check_order(books, order, report)
    if not report.in_flight:
        _check_money(books, report)
        _check_stock(books, report)
    report.stock = {
        product.product_id: {"available": product.available, "reserved": product.reserved}
        for product in books.products
    }
    return report


def _check_sagas(books: _Books, report: AuditReport) -> None:
    for saga_id, status in books.sagas.items():
        if status in _ACTIVE_SAGA:
            report.in_flight.append(saga_id)
        elif status == "REQUIRES_ATTENTION":
            report.parked.append(saga_id)
        elif status not in _FINAL_SAGA:
            report.add("saga.unknown_status", saga_id, f"status {status!r}")
    for order in books.orders.values():
        if order.saga_id not in books.sagas:
            report.add("order.no_saga", order.order_id, f"its saga {order.saga_id!r} does not exist")


def _check_order(books: _Books, order: OrderEntry, report: AuditReport) -> None:
    """The order against its saga and what every module holds for it."""
    order_id, status = order.order_id, order.status
    saga_statuses = {
        str(books.sagas[saga_id])
        for saga_id in (order.saga_id, order.cancel_saga_id)
        if saga_id in books.sagas
    }
    if saga_statuses & (_ACTIVE_SAGA | {"REQUIRES_ATTENTION"}):
        return  # not settled yet: reported with its saga
    notices = books.notifications.get(order_id, Counter())
    for kind, count in notices.items():
        if count > 1:
            report.add("notification.duplicate", order_id, f"{count} {kind} notifications")
    if status not in _SETTLED_ORDER:
        report.add("order.stuck", order_id, f"status {status} but its sagas are {sorted(saga_statuses)}")
    elif status == "COMPLETED":
        _check_completed(books, order, notices, report)
    else:
        _check_undone(books, order, notices, report)


def _check_completed(books: _Books, order: OrderEntry, notices: Counter[str], report: AuditReport) -> None:
    """A COMPLETED order: stock held, paid once, shipped, confirmed."""
    order_id = order.order_id
    reservation = _status(books.reservations.get(order_id))
    payment, shipment = books.payments.get(order_id), books.shipments.get(order_id)
    if reservation != "RESERVED":
        report.add("order.stock_not_held", order_id, f"COMPLETED but its reservation is {reservation}")
    if payment is None or payment.status != "COMPLETED":
        report.add("order.not_paid", order_id, f"COMPLETED but its payment is {_status(payment)}")
    elif payment.payment_id != order.payment_id:
        report.add("order.wrong_payment", order_id, f"it names {order.payment_id}")
    if shipment is None or shipment.status != "SCHEDULED":
        report.add("order.not_shipped", order_id, f"COMPLETED but its shipment is {_status(shipment)}")
    elif shipment.shipping_id != order.shipping_id:
        report.add("order.wrong_shipment", order_id, f"it names {order.shipping_id}")
    if notices["ORDER_CONFIRMED"] != 1 or notices["ORDER_FAILED"]:
        report.add("order.notices", order_id, f"COMPLETED with notifications {dict(notices)}")


def _check_undone(books: _Books, order: OrderEntry, notices: Counter[str], report: AuditReport) -> None:
    """A FAILED or CANCELLED order: nothing held, nothing kept, the customer told once."""
    order_id, status = order.order_id, order.status
    reservation = _status(books.reservations.get(order_id))
    payment = _status(books.payments.get(order_id))
    shipment = _status(books.shipments.get(order_id))
    if reservation not in _NO_STOCK:
        report.add("order.stock_leaked", order_id, f"{status} but its reservation is {reservation}")
    if payment not in _NO_MONEY:
        report.add("order.money_kept", order_id, f"{status} but its payment is {payment}")
    if shipment not in _NO_COURIER:
        report.add("order.courier_kept", order_id, f"{status} but its shipment is {shipment}")
    expected = "ORDER_FAILED" if status == "FAILED" else "ORDER_CANCELLED"
    if notices[expected] != 1:
        report.add("order.notices", order_id, f"{status} with notifications {dict(notices)}")


def _status(entry: ReservationEntry | PaymentEntry | ShipmentEntry | None) -> str | None:
    return None if entry is None else entry.status


def _check_money(books: _Books, report: AuditReport) -> None:
    """The gateway's ledger against the payment records: each order's money moved once.

    A payment record names the one idempotency key its charges use, and the ledger holds one
    charge per key; so a second charge for an order is one under another key, which no payment
    record names: an orphan. That is how a double charge shows.
    """
    refunded = _refunds(books.ledger)
    payments = {doc.charge_key: doc for doc in books.payments.values() if doc.charge_key}
    for charge in books.ledger:
        if charge.kind != "charge":
            continue
        payment = payments.get(charge.idempotency_key)
        captured = charge.amount_cents if charge.approved else 0
        if payment is None:
            if captured:
                report.add(
                    "money.orphan_charge", charge.transaction_id, "an approved charge with no payment record"
                )
            continue
        back = refunded[charge.reference]
        if back > captured:
            report.add("money.over_refunded", payment.order_id, f"refunded {back} of {captured}")
        elif captured > back:
            _check_kept(books.orders.get(payment.order_id), captured - back, report)


def _refunds(ledger: list[GatewayEntry]) -> Counter[str | None]:
    """Cents refunded, by the reference of the charge refunded."""
    refunded: Counter[str | None] = Counter()
    for entry in ledger:
        if entry.kind == "refund" and entry.approved:
            refunded[entry.charge_reference] += entry.amount_cents
    return refunded


def _check_kept(order: OrderEntry | None, kept: int, report: AuditReport) -> None:
    """Money still captured for `order`: its total if COMPLETED, nothing if it was undone."""
    if order is None:
        return  # reported as a payment without an order
    if order.status == "COMPLETED" and kept != order.total_cents:
        report.add("money.wrong_amount", order.order_id, f"kept {kept} for a total of {order.total_cents}")
    if order.status in ("FAILED", "CANCELLED"):
        report.add("money.kept", order.order_id, f"{order.status} but {kept} cents are still captured")


def _check_stock(books: _Books, report: AuditReport) -> None:
    """Each product's counters against the reservations held on it."""
    held: Counter[str] = Counter()
    for reservation in books.reservations.values():
        if reservation.status == "RESERVED":
            for item in reservation.items:
                held[item.product_id] += item.quantity
    for product in books.products:
        product_id, available, reserved = product.product_id, product.available, product.reserved
        if available < 0 or reserved < 0:
            report.add("stock.negative", product_id, f"available {available}, reserved {reserved}")
        if reserved != held[product_id]:
            report.add(
                "stock.reserved_mismatch",
                product_id,
                f"reserved {reserved}, held by orders {held[product_id]}",
            )
        for marker, marked in (("holds", product.pending_holds), ("releases", product.pending_releases)):
            unfinished = [order for order in marked if not _records(books.reservations.get(order), marker)]
            if unfinished:
                report.add("stock.unfinished", product_id, f"{marker} left for {unfinished[:5]}")


_RECORDED = {"holds": ("RESERVED", "RELEASING", "RELEASED"), "releases": ("RELEASED",)}
"""The reservation statuses that record a hold, or a release, once made: a mark of such a move
is only waiting to be unset (`BeanieInventoryRepository` unsets them with a later move)."""


def _records(reservation: ReservationEntry | None, marker: str) -> bool:
    """True if the reservation's status records the move the product's `marker` mark stands for."""
    return reservation is not None and reservation.status in _RECORDED[marker]


def build_router(sources: AuditSources, auth: Authenticator) -> APIRouter:
    """`GET /api/audit`: run the audit on the books `sources` reads (operators)."""
    router = APIRouter(tags=["operations"], dependencies=[Depends(auth.operator)])

    @router.get("/api/audit", response_model=AuditReport, responses=responses(401, 403, 503))
    async def run_audit() -> AuditReport:
        """Check that the modules' records agree (one read of every collection; see docs/operations.md).

        `ok` is true when every saga has settled and no rule is broken. Sagas in flight are
        listed, not counted as violations; money, stock and notices are judged once none is.
        """
        return await audit(sources)

    return router
