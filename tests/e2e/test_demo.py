"""`ecommerce-saga demo` and `ecommerce-saga token` against an app running the development issuer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import jwt

from tests.e2e.conftest import LiveApp, start_app

DEVELOPMENT_ISSUER = {"SHOP_OIDC_ISSUER": "", "SHOP_OIDC_AUDIENCE": ""}
"""No identity provider: the app signs and checks its own tokens (the key is in SHOP_DATA_DIR)."""


def _cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SHOP_DATA_DIR": str(data_dir), **DEVELOPMENT_ISSUER, **env}
    return subprocess.run(
        [sys.executable, "-m", "ecommerce_saga", *args],
        capture_output=True, text=True, timeout=120, check=False, env=environment,
    )  # fmt: skip


def _start(mongo_url: str, tmp_path: Path) -> LiveApp:
    return start_app(
        mongo_url, tmp_path, SHOP_DEMO_CATALOG="true", SHOP_DATA_DIR=str(tmp_path), **DEVELOPMENT_ISSUER
    )


def test_prints_each_outcome_with_its_history_when_run_against_the_demo_catalog(
    mongo_url: str, tmp_path: Path
) -> None:
    app = _start(mongo_url, tmp_path)
    try:
        result = _cli(tmp_path, "demo", "--url", app.url)
    finally:
        app.stop()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "a successful order: HTTP 201" in out and "COMPLETED" in out
    assert "an item out of stock: HTTP 201" in out and "INVENTORY_UNAVAILABLE" in out
    assert "a declined card: HTTP 201" in out and "PAYMENT_DECLINED" in out
    assert "an undeliverable country: HTTP 201" in out and "SHIPPING_UNAVAILABLE" in out
    assert out.count("compensation reserve_inventory") == 2  # declined card and undeliverable country
    assert "4242424242424242" not in out
    emails = [line for line in out.splitlines() if line.strip().startswith("email ")]
    assert [line.split()[1] for line in emails] == ["ORDER_CONFIRMED", *["ORDER_FAILED"] * 3], out
    outbox = tmp_path / "outbox"
    for line in emails:  # each says where its message went: a file of the development outbox
        assert "to ada@example.com: SENT — saved to the development outbox: " in line, line
        assert Path(line.split("development outbox: ", 1)[1]).parent == outbox
    assert len(list(outbox.glob("*.eml"))) == 4


def test_signs_tokens_the_app_accepts_when_no_identity_provider_is_configured(
    mongo_url: str, tmp_path: Path
) -> None:
    app = _start(mongo_url, tmp_path)
    try:
        customer = _cli(
            tmp_path, "token", "--customer", "cust-dev", "--ttl", "120", "--email", "Dev@Example.com"
        )
        bad_email = _cli(tmp_path, "token", "--customer", "cust-dev", "--email", "dev@")
        operator = _cli(tmp_path, "token", "--customer", "ops-dev", "--admin")
        assert customer.returncode == 0 and operator.returncode == 0, customer.stderr + operator.stderr
        as_customer = {"Authorization": f"Bearer {customer.stdout.strip()}"}
        as_operator = {"Authorization": f"Bearer {operator.stdout.strip()}"}
        mine = httpx.get(f"{app.url}/api/orders", headers=as_customer, timeout=30)
        others = httpx.get(f"{app.url}/api/orders?customer_id=cust-other", headers=as_customer, timeout=30)
        sagas_as_customer = httpx.get(f"{app.url}/api/sagas", headers=as_customer, timeout=30)
        sagas_as_operator = httpx.get(f"{app.url}/api/sagas", headers=as_operator, timeout=30)
        discovery = httpx.get(f"{app.url}/.well-known/openid-configuration", timeout=30).json()
        jwks = httpx.get(discovery["jwks_uri"], timeout=30).json()
        log = app.log.read_text()
    finally:
        app.stop()
    assert (mine.status_code, others.status_code) == (200, 403)
    claims = jwt.decode(customer.stdout.strip(), options={"verify_signature": False})
    assert claims["email"] == "Dev@example.com"  # the domain normalised, the local part kept
    assert bad_email.returncode == 2 and "--email" in bad_email.stderr
    assert (sagas_as_customer.status_code, sagas_as_operator.status_code) == (403, 200)
    assert discovery["issuer"] == "urn:ecommerce-saga:development-issuer"
    assert [key["alg"] for key in jwks["keys"]] == ["ES256"] and "d" not in jwks["keys"][0]
    assert "the development issuer is on" in log
    assert customer.stdout.strip() not in log and operator.stdout.strip() not in log


def test_refuses_to_sign_when_an_identity_provider_is_configured(tmp_path: Path) -> None:
    result = _cli(
        tmp_path, "token", "--customer", "cust-dev",
        SHOP_OIDC_ISSUER="https://sso.example.com/realms/shop", SHOP_OIDC_AUDIENCE="shop",
    )  # fmt: skip

    assert result.returncode == 2
    assert "development issuer is off" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "identity").exists()
