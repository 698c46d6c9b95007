"""Access tokens against the real app: forged and broken ones refused, keys rotated without a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import LiveApp
from tests.e2e.shop import unique
from tests.identity_provider import AUDIENCE, PrivateKey, TestIdentityProvider, shared_provider
from tests.waiting import eventually_blocking


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, object]) -> str:
    return _b64(json.dumps(value).encode())


def _hs256_with_public_key(provider: TestIdentityProvider) -> str:
    """The RSA/HMAC confusion: HS256 'signed' with the issuer's public key as the shared secret."""
    public = provider.private_key(provider.rsa_kid).public_key()
    secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _segment({"alg": "HS256", "kid": provider.rsa_kid, "typ": "JWT"})
    signing_input = f"{header}.{_segment(provider.claims('mallory'))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered(provider: TestIdentityProvider) -> str:
    """A valid token whose payload was changed to another customer, signature kept."""
    header, _, signature = provider.token("mallory").split(".")
    return f"{header}.{_segment(provider.claims('victim'))}.{signature}"


def _relabelled(provider: TestIdentityProvider) -> str:
    _, payload, signature = provider.token("mallory", kid=provider.ec_kid).split(".")
    return f"{_segment({'alg': 'RS256', 'kid': provider.ec_kid})}.{payload}.{signature}"


FORGED: dict[str, Callable[[TestIdentityProvider], str]] = {
    "alg none": lambda p: jwt.encode(p.claims("mallory"), None, algorithm="none"),
    "HS256 with the public key": _hs256_with_public_key,
    "tampered payload": _tampered,
    "expired": lambda p: p.token("mallory", exp=int(time.time()) - 3600),
    "not yet valid": lambda p: p.token("mallory", nbf=int(time.time()) + 3600),
    "wrong issuer": lambda p: p.token("mallory", iss="https://evil.example.com"),
    "wrong audience": lambda p: p.token("mallory", aud="another-api"),
    "no expiry": lambda p: jwt.encode(
        {k: v for k, v in p.claims("mallory").items() if k != "exp"},
        p.private_key(p.rsa_kid),
        algorithm="RS256",
        headers={"kid": p.rsa_kid},
    ),
    "unknown kid": lambda p: jwt.encode(
        p.claims("mallory"), p.private_key(p.rsa_kid), algorithm="RS256", headers={"kid": "no-such-key"}
    ),
    "EC key named by an RSA algorithm": _relabelled,
    "a customer id that is not an id": lambda p: p.token("../etc/passwd"),
    "garbage": lambda p: "not-a-jwt",
    "three dots of garbage": lambda p: "a.b.c",
}


@pytest.fixture
def http(live_app: LiveApp) -> Iterator[httpx.Client]:
    """A client of the one-process app, with no credential of its own."""
    with httpx.Client(base_url=live_app.url, timeout=30) as client:
        yield client


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_refuses_a_forged_or_broken_token_with_401(http: httpx.Client, live_app: LiveApp, kind: str) -> None:
    token = FORGED[kind](shared_provider())

    response = http.get("/api/orders", headers=_as(token))

    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "auth.invalid_token"
    assert response.headers["www-authenticate"] == 'Bearer realm="ecommerce-saga", error="invalid_token"'
    log = eventually_blocking(live_app.log.read_text, lambda text: "refused a token" in text)
    assert token not in log


def test_accepts_rsa_and_ec_tokens_and_an_admin_role_at_the_keycloak_claim(http: httpx.Client) -> None:
    provider = shared_provider()
    customer = unique("cust")

    rsa_customer = http.get("/api/orders", headers=_as(provider.token(customer)))
    ec_customer = http.get("/api/orders", headers=_as(provider.token(customer, kid=provider.ec_kid)))
    customer_sagas = http.get("/api/sagas", headers=_as(provider.token(customer)))
    operator_sagas = http.get("/api/sagas", headers=_as(provider.token(unique("ops"), admin=True)))

    assert (rsa_customer.status_code, ec_customer.status_code) == (200, 200)
    assert rsa_customer.json()["items"] == []  # a new customer has no orders, and sees nobody else's
    assert (customer_sagas.status_code, customer_sagas.json()["code"]) == (403, "auth.forbidden")
    assert operator_sagas.status_code == 200


def test_takes_a_new_signing_key_without_a_restart_and_drops_a_removed_one(http: httpx.Client) -> None:
    provider = shared_provider()
    first = provider.add_key("ES256")

    accepted = (
        eventually_blocking(  # the app fetches the keys again for a kid it does not know (once a second)
            lambda: (
                http.get("/api/orders", headers=_as(provider.token(unique("cust"), kid=first))).status_code
            ),
            lambda status: status == 200,
        )
    )
    removed_key = provider.private_key(first)
    provider.remove_key(first)
    second = provider.add_key("RS256")
    rotated = eventually_blocking(
        lambda: http.get("/api/orders", headers=_as(provider.token(unique("cust"), kid=second))).status_code,
        lambda status: status == 200,
    )
    removed = eventually_blocking(
        lambda: http.get("/api/orders", headers=_as(_signed_by(removed_key, first))).status_code,
        lambda status: status == 401,
    )
    provider.remove_key(second)

    assert (accepted, rotated, removed) == (200, 200, 401)


def _signed_by(key: PrivateKey, kid: str) -> str:
    """A token signed by `key`, named `kid` (a key the provider no longer publishes)."""
    return jwt.encode(shared_provider().claims(unique("cust")), key, algorithm="ES256", headers={"kid": kid})


def test_answers_401_without_a_token_and_says_how_to_authenticate(http: httpx.Client) -> None:
    response = http.get("/api/orders")

    assert response.status_code == 401
    assert response.json()["code"] == "auth.token_missing"
    assert response.headers["www-authenticate"] == 'Bearer realm="ecommerce-saga"'
    assert AUDIENCE  # the app under test trusts the test provider's audience
