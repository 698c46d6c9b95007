"""The audit's rules on in-memory books: it needs nothing but each module's read port, no database.

The books below tell one story (a completed and a failed order); each test breaks one fact and
expects the rule that covers it. `tests/integration/test_audit.py` runs the same audit on books
the sagas kept, read through the modules' real read ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ecommerce_saga.modules.inventory.contract import HeldQuantity, ReservationEntry, StockEntry
from ecommerce_saga.modules.notification.contract import NotificationEntry
from ecommerce_saga.modules.order.contract import OrderEntry
from ecommerce_saga.modules.payment.contract import GatewayEntry, PaymentEntry
from ecommerce_saga.modules.shipping.contract import ShipmentEntry
from ecommerce_saga.operations.audit import AuditReport, AuditSources, audit


@dataclass
class InMemoryBooks:
    """Every module's read port and the saga census, on lists a test edits."""

    sagas: dict[str, str | None] = field(default_factory=dict)
    order_entries: list[OrderEntry] = field(default_factory=list)
    stock_entries: list[StockEntry] = field(default_factory=list)
    reservation_entries: list[ReservationEntry] = field(default_factory=list)
    payment_entries: list[PaymentEntry] = field(default_factory=list)
    ledger_entries: list[GatewayEntry] = field(default_factory=list)
    shipment_entries: list[ShipmentEntry] = field(default_factory=list)
    notification_entries: list[NotificationEntry] = field(default_factory=list)

    async def statuses(self) -> dict[str, str | None]:
        return dict(self.sagas)

    async def orders(self) -> list[OrderEntry]:
        return list(self.order_entries)

    async def stock(self) -> list[StockEntry]:
        return list(self.stock_entries)

    async def reservations(self) -> list[ReservationEntry]:
        return list(self.reservation_entries)

    async def payments(self) -> list[PaymentEntry]:
        return list(self.payment_entries)

    async def gateway_ledger(self) -> list[GatewayEntry]:
        return list(self.ledger_entries)

    async def shipments(self) -> list[ShipmentEntry]:
        return list(self.shipment_entries)

    async def notifications(self) -> list[NotificationEntry]:
        return list(self.notification_entries)


def _charge(key: str, amount: int, *, approved: bool = True) -> GatewayEntry:
    return GatewayEntry(
        transaction_id=f"charge:{key}", kind="charge", idempotency_key=key, reference=f"ref-{key}",
        charge_reference=None, amount_cents=amount, approved=approved,
    )  # fmt: skip


def _refund(key: str, charge_key: str, amount: int) -> GatewayEntry:
    return GatewayEntry(
        transaction_id=f"refund:{key}", kind="refund", idempotency_key=key, reference=f"ref-{key}",
        charge_reference=f"ref-{charge_key}", amount_cents=amount, approved=True,
    )  # fmt: skip


def _balanced() -> InMemoryBooks:
    """A completed order (2 units held, 1000 captured, shipped, confirmed) and a declined one."""
    return InMemoryBooks(
        sagas={"s-1": "COMPLETED", "s-2": "COMPENSATED"},
        order_entries=[
            OrderEntry(
                order_id="o-1",
                status="COMPLETED",
                saga_id="s-1",
                payment_id="pay-1",
                shipping_id="shp-1",
                total_cents=1000,
            ),
            OrderEntry(order_id="o-2", status="FAILED", saga_id="s-2", total_cents=500),
        ],
        stock_entries=[StockEntry(product_id="sku-a", available=7, reserved=2)],
        reservation_entries=[
            ReservationEntry(
                order_id="o-1", status="RESERVED", items=[HeldQuantity(product_id="sku-a", quantity=2)]
            ),
            ReservationEntry(
                order_id="o-2", status="RELEASED", items=[HeldQuantity(product_id="sku-a", quantity=1)]
            ),
        ],
        payment_entries=[
            PaymentEntry(order_id="o-1", payment_id="pay-1", status="COMPLETED", charge_key="k-1"),
            PaymentEntry(order_id="o-2", payment_id="pay-2", status="DECLINED", charge_key="k-2"),
        ],
        ledger_entries=[_charge("k-1", 1000), _charge("k-2", 500, approved=False)],
        shipment_entries=[ShipmentEntry(order_id="o-1", shipping_id="shp-1", status="SCHEDULED")],
        notification_entries=[
            NotificationEntry(notification_id="n-1", order_id="o-1", type="ORDER_CONFIRMED"),
            NotificationEntry(notification_id="n-2", order_id="o-2", type="ORDER_FAILED"),
        ],
    )


def _sources(books: InMemoryBooks) -> AuditSources:
    return AuditSources(
        sagas=books, orders=books, inventory=books, payments=books, shipping=books, notifications=books
    )


async def _audit(books: InMemoryBooks) -> AuditReport:
    return await audit(_sources(books))


def _codes(report: AuditReport) -> set[str]:
    return {finding.code for finding in report.violations}


async def test_passes_when_every_module_tells_the_same_story() -> None:
    report = await _audit(_balanced())

    assert report.ok, report.summary()
    assert report.counts["orders.COMPLETED"] == report.counts["orders.FAILED"] == 1
    assert report.counts["gateway transactions"] == 2
    assert report.stock == {"sku-a": {"available": 7, "reserved": 2}}


async def test_finds_an_over_refund_when_a_refund_exceeds_its_charge() -> None:
    books = _balanced()
    books.ledger_entries.append(_refund("r-1", "k-1", 1500))

    report = await _audit(books)

    assert "money.over_refunded" in _codes(report), report.summary()


async def test_finds_the_wrong_amount_when_a_completed_order_kept_less_than_its_total() -> None:
    books = _balanced()
    books.ledger_entries.append(_refund("r-1", "k-1", 100))

    report = await _audit(books)

    assert [str(f) for f in report.violations] == ["money.wrong_amount o-1: kept 900 for a total of 1000"]


async def test_finds_a_saga_status_the_engine_does_not_know() -> None:
    books = _balanced()
    books.sagas["s-2"] = "PAUSED"

    report = await _audit(books)

    assert "saga.unknown_status" in _codes(report), report.summary()


async def test_finds_an_order_whose_saga_does_not_exist() -> None:
    books = _balanced()
    del books.sagas["s-2"]

    report = await _audit(books)

    assert "order.no_saga" in _codes(report), report.summary()


async def test_finds_an_order_naming_another_payment_or_shipment() -> None:
    books = _balanced()
    books.order_entries[0] = books.order_entries[0].model_copy(
        update={"payment_id": "pay-9", "shipping_id": "shp-9"}
    )

    report = await _audit(books)

    assert {"order.wrong_payment", "order.wrong_shipment"} <= _codes(report), report.summary()


async def test_finds_a_release_left_half_done() -> None:
    books = _balanced()
    books.stock_entries[0] = books.stock_entries[0].model_copy(update={"pending_releases": ["o-2"]})
    books.reservation_entries[1] = books.reservation_entries[1].model_copy(update={"status": "RELEASING"})

    report = await _audit(books)

    assert "stock.unfinished sku-a: releases left for ['o-2']" in [str(f) for f in report.violations]


async def test_finds_a_hold_of_an_order_without_a_reservation() -> None:
    books = _balanced()
    books.stock_entries[0] = books.stock_entries[0].model_copy(update={"pending_holds": ["o-1", "o-9"]})

    report = await _audit(books)

    assert [str(f) for f in report.violations] == ["stock.unfinished sku-a: holds left for ['o-9']"]


async def test_marks_of_moves_the_reservations_record_are_not_unfinished() -> None:
    # The repository unsets a mark with the product's next move; until then (or for good, if its
    # process stopped) the mark stays while the reservation's status already records the move.
    books = _balanced()
    books.stock_entries[0] = books.stock_entries[0].model_copy(
        update={"pending_holds": ["o-1", "o-2"], "pending_releases": ["o-2"]}
    )

    report = await _audit(books)

    assert report.violations == [], report.summary()


async def test_leaves_money_and_stock_unjudged_while_a_saga_is_in_flight() -> None:
    books = _balanced()
    books.sagas["s-1"] = "RUNNING"
    books.stock_entries[0] = books.stock_entries[0].model_copy(update={"reserved": 5})
    books.ledger_entries.append(_charge("k-orphan", 1000))

    report = await _audit(books)

    assert report.in_flight == ["s-1"]
    assert report.violations == []
    assert not report.settled


async def test_a_saga_settling_while_the_audit_reads_is_not_a_finding() -> None:
    """The declined order's saga is still compensating when the audit starts: it sends the failure
    notice and settles right after the audit's first read. The audit sees it in flight, or sees it
    settled with its notice, never settled without it (`tests/chaos` found that twice)."""

    class Settling(InMemoryBooks):
        reads = 0

        def _after_a_read(self) -> None:
            self.reads += 1
            if self.reads == 1:  # the saga sends its notice, then records that it settled
                self.notification_entries.append(notice)
                self.sagas["s-2"] = "COMPENSATED"

        async def statuses(self) -> dict[str, str | None]:
            found = await super().statuses()
            self._after_a_read()
            return found

        async def notifications(self) -> list[NotificationEntry]:
            found = await super().notifications()
            self._after_a_read()
            return found

    books = Settling(**vars(_balanced()))
    books.sagas["s-2"] = "COMPENSATING"
    notice = books.notification_entries.pop()  # the ORDER_FAILED of o-2, not sent yet

    report = await _audit(books)

    assert report.violations == [], report.summary()
    assert report.in_flight == ["s-2"]
