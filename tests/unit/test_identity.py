"""Credentials without HTTP: static token lists, the JWKS cache's refresh rules, settings checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import ValidationError

from ecommerce_saga.identity import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    DevelopmentIssuer,
    IdentityProviderUnavailableError,
    InvalidTokenError,
    JwksCache,
    OidcClaims,
    Principal,
    Role,
    TokenVerifier,
)
from ecommerce_saga.modules.order.router import OrderRequest
from ecommerce_saga.settings import Settings
from ecommerce_saga.shared.contracts import InvalidRequestError
from ecommerce_saga.web.auth import Authenticator, AuthError, customer_scope, split_tokens
from ecommerce_saga.web.problems import install_problem_handlers

CLAIMS = OidcClaims(issuer=DEV_ISSUER, audience=DEV_AUDIENCE)


async def test_accepts_the_current_and_the_next_token_while_one_is_rotated() -> None:
    auth = Authenticator(
        service_tokens=split_tokens("svc-old, svc-new"), admin_tokens=split_tokens("adm-1,adm-2")
    )

    for token in ("svc-old", "svc-new"):
        assert (await auth.authenticate(token)).roles == {Role.SERVICE}
    for token in ("adm-1", "adm-2"):
        assert (await auth.authenticate(token)).is_operator
    with pytest.raises(InvalidTokenError):
        await auth.authenticate("svc-ol")
    assert auth.first_service_token == "svc-old"  # what this process sends to the others


async def test_refuses_a_jwt_when_no_verifier_is_configured() -> None:
    auth = Authenticator(service_tokens=["s"], admin_tokens=["a"])

    with pytest.raises(InvalidTokenError):
        await auth.authenticate("x.y.z")


def test_lets_customers_see_only_their_own_and_operators_everything() -> None:
    ada = Principal("cust-ada", frozenset({Role.CUSTOMER}), "jwt")
    ops = Principal("admin-token", frozenset({Role.OPERATOR}), "admin-token")

    assert ada.may_see("cust-ada") and not ada.may_see("cust-bob") and not ada.may_see(None)
    assert ops.may_see("cust-bob") and ops.customer_id is None
    assert customer_scope(ada, None) == "cust-ada"
    assert customer_scope(ops, None) is None and customer_scope(ops, "cust-bob") == "cust-bob"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Keys:
    """A JWKS endpoint whose keys change and which can fail."""

    def __init__(self, *issuers: DevelopmentIssuer) -> None:
        self.issuers = list(issuers)
        self.fetches = 0
        self.down = False

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.down:
            raise httpx.ConnectError("down")
        return {"keys": [key for issuer in self.issuers for key in issuer.jwks()["keys"]]}


def _issuer(tmp_path: Path, name: str) -> DevelopmentIssuer:
    return DevelopmentIssuer.load_or_create(tmp_path / name, CLAIMS)


async def test_fetches_again_for_an_unknown_kid_but_at_most_once_a_second(tmp_path: Path) -> None:
    old, new = _issuer(tmp_path, "old"), _issuer(tmp_path, "new")
    keys, clock = Keys(old), Clock()
    verifier = TokenVerifier(CLAIMS, JwksCache(keys.fetch, clock=clock))
    assert (await verifier.verify(old.mint("ada"))).subject == "ada"
    keys.issuers.append(new)

    with pytest.raises(InvalidTokenError):  # too soon after the last fetch: refused, not fetched
        await verifier.verify(new.mint("bob"))
    clock.now = 1.5
    accepted = await verifier.verify(new.mint("bob"))

    assert accepted.subject == "bob"
    assert keys.fetches == 2


async def test_keeps_the_cached_keys_while_the_issuer_is_down_and_says_so_when_it_has_none(
    tmp_path: Path,
) -> None:
    issuer = _issuer(tmp_path, "i")
    keys, clock = Keys(issuer), Clock()
    verifier = TokenVerifier(CLAIMS, JwksCache(keys.fetch, max_age_seconds=10, clock=clock))
    await verifier.verify(issuer.mint("ada"))
    keys.down, clock.now = True, 60.0

    assert (await verifier.verify(issuer.mint("ada"))).subject == "ada"
    with pytest.raises(IdentityProviderUnavailableError):
        await TokenVerifier(CLAIMS, JwksCache(keys.fetch)).verify(issuer.mint("ada"))


async def test_drops_a_key_the_issuer_no_longer_publishes_once_the_cache_is_stale(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path, "i")
    keys, clock = Keys(issuer), Clock()
    verifier = TokenVerifier(CLAIMS, JwksCache(keys.fetch, max_age_seconds=10, clock=clock))
    token = issuer.mint("ada")
    await verifier.verify(token)
    keys.issuers = []
    clock.now = 11.0

    with pytest.raises(InvalidTokenError):
        await verifier.verify(token)


def test_shares_one_development_key_between_processes_and_keeps_it_private(tmp_path: Path) -> None:
    first, second = _issuer(tmp_path, "d"), _issuer(tmp_path, "d")

    assert first.kid == second.kid
    assert (tmp_path / "d" / "identity" / "dev-signing-key.pem").stat().st_mode & 0o077 == 0


def test_refuses_settings_that_would_open_a_hole() -> None:
    with pytest.raises(ValidationError, match="SHOP_OIDC_AUDIENCE"):
        Settings(oidc_issuer="https://sso.example.com/realms/shop")
    with pytest.raises(ValidationError, match="SHOP_METRICS_PORT"):
        Settings(port=9000, metrics_port=9000)
    assert Settings(oidc_issuer="").uses_development_issuer


def _order_request(**changes: object) -> OrderRequest:
    body: dict[str, object] = {
        "items": [{"product_id": "sku-1", "quantity": 1}],
        "payment": {"method": "PAYPAL", "paypal_email": "pay@example.com"},
        "shipping_address": {"name": "Ada", "street": "1 St", "city": "London", "postal_code": "N1",
                             "country": "GB"},
    }  # fmt: skip
    return OrderRequest.model_validate({**body, **changes})


def test_orders_for_the_right_customer_whoever_places_them() -> None:
    ada = Principal("cust-ada", frozenset({Role.CUSTOMER}), "jwt")
    admin_token = Principal("admin-token", frozenset({Role.OPERATOR}), "admin-token")
    admin_jwt = Principal("ops-bob", frozenset({Role.CUSTOMER, Role.OPERATOR}), "jwt")

    assert _order_request().placed_by(ada).customer_id == "cust-ada"
    assert _order_request(customer_id="cust-ada").placed_by(ada).customer_id == "cust-ada"
    with pytest.raises(AuthError) as refused:
        _order_request(customer_id="cust-eve").placed_by(ada)
    assert (refused.value.status, refused.value.code) == (403, "auth.forbidden")
    assert _order_request(customer_id="cust-eve").placed_by(admin_token).customer_id == "cust-eve"
    with pytest.raises(InvalidRequestError, match="customer_id"):  # the admin token is nobody's
        _order_request().placed_by(admin_token)
    assert _order_request().placed_by(admin_jwt).customer_id == "ops-bob"  # an operator shopping


async def test_answers_503_with_retry_after_when_the_issuers_keys_cannot_be_fetched(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path, "i")
    keys = Keys(issuer)
    keys.down = True
    auth = Authenticator(
        service_tokens=["s"], admin_tokens=["a"], verifier=TokenVerifier(CLAIMS, JwksCache(keys.fetch))
    )
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/mine")
    async def mine(caller: Principal = Depends(auth.customer)) -> dict[str, str]:
        return {"customer": caller.subject}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.get("/mine", headers={"Authorization": f"Bearer {issuer.mint('ada')}"})
        keys.down = False
        recovered = await client.get("/mine", headers={"Authorization": f"Bearer {issuer.mint('ada')}"})

    assert (response.status_code, response.json()["code"]) == (503, "auth.identity_provider_unavailable")
    assert response.headers["retry-after"] == "5"
    assert recovered.json() == {"customer": "ada"}
