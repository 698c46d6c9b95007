"""The `email` claim: read into the principal when valid, minted by the development issuer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecommerce_saga.identity import DEV_AUDIENCE, DEV_ISSUER, DevelopmentIssuer, OidcClaims, TokenVerifier
from ecommerce_saga.modules.order.router import OrderRequest

CLAIMS = OidcClaims(issuer=DEV_ISSUER, audience=DEV_AUDIENCE)


@pytest.fixture
def issuer(tmp_path: Path) -> DevelopmentIssuer:
    """A development issuer with a key of the test's own."""
    return DevelopmentIssuer.load_or_create(tmp_path, CLAIMS)


async def test_reads_the_email_claim_when_the_token_carries_a_valid_one(issuer: DevelopmentIssuer) -> None:
    verifier = TokenVerifier(CLAIMS, issuer.keys())

    principal = await verifier.verify(issuer.mint("cust-ada", email="ada@Example.COM"))

    assert principal.email == "ada@example.com"
    assert "ada@" not in repr(principal)  # personal data stays out of reprs (and so of logs)


@pytest.mark.parametrize("email", [None, "not-an-address", "ada@example.com\r\nBcc: x@y.z"])
async def test_has_no_email_when_the_claim_is_missing_or_invalid(
    issuer: DevelopmentIssuer, email: str | None
) -> None:
    verifier = TokenVerifier(CLAIMS, issuer.keys())

    principal = await verifier.verify(issuer.mint("cust-ada", email=email))

    assert principal.email is None
    assert principal.customer_id == "cust-ada"


def _request(**changes: object) -> OrderRequest:
    body: dict[str, object] = {
        "items": [{"product_id": "sku-1", "quantity": 1}],
        "payment": {"method": "PAYPAL", "paypal_email": "pay@example.com"},
        "shipping_address": {"name": "Ada", "street": "1 St", "city": "London", "postal_code": "N1",
                             "country": "GB"},
    }  # fmt: skip
    return OrderRequest.model_validate({**body, **changes})


async def test_orders_use_the_token_email_unless_the_body_names_one(issuer: DevelopmentIssuer) -> None:
    verifier = TokenVerifier(CLAIMS, issuer.keys())
    customer = await verifier.verify(issuer.mint("cust-ada", email="ada@example.com"))
    operator = await verifier.verify(issuer.mint("ops-bob", admin=True, email="bob@example.com"))

    assert _request().placed_by(customer).contact_email == "ada@example.com"
    assert _request(contact_email="ada@work.example").placed_by(customer).contact_email == "ada@work.example"
    on_behalf = _request(customer_id="cust-ada").placed_by(operator)
    assert (on_behalf.customer_id, on_behalf.contact_email) == ("cust-ada", None)  # not the operator's
