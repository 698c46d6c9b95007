"""A caller as the routes see it: who it is and what it may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """What a caller may do.

    - `CUSTOMER`: their own orders, payments, shipments and notifications.
    - `OPERATOR`: everything a customer may, for any customer; catalog administration; saga operations.
    - `SERVICE`: the saga endpoints between modules (split mode).
    """

    CUSTOMER = "customer"
    OPERATOR = "operator"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        subject: The customer id for a customer's token; a fixed name for the static tokens.
        roles: What the caller may do.
        credential: How the caller proved it (`jwt`, `admin-token`, `service-token`); for logs.
        email: The token's `email` claim (OIDC standard), if it carries a valid one: where the
            customer is told about their orders unless an order names another address. Never logged.
    """

    subject: str
    roles: frozenset[Role]
    credential: str
    email: str | None = field(default=None, repr=False)

    @property
    def is_operator(self) -> bool:
        """True for an operator (the admin token, or a token carrying the admin role)."""
        return Role.OPERATOR in self.roles

    @property
    def is_service(self) -> bool:
        """True for another module of the shop (the service token)."""
        return Role.SERVICE in self.roles

    @property
    def customer_id(self) -> str | None:
        """The customer this caller is, if it is one."""
        return self.subject if Role.CUSTOMER in self.roles else None

    def may_see(self, owner: str | None) -> bool:
        """True if the caller may see an object that belongs to `owner` (a customer id)."""
        if self.is_operator:
            return True
        return owner is not None and owner == self.customer_id
