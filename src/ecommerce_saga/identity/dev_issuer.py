"""The development issuer: with no identity provider configured, the app signs its own tokens.

It exists so that `make run` needs no setup: a P-256 signing key is created in the data folder at
first start (readable by its owner only), the app serves its JWKS and a discovery document, and
`ecommerce-saga token --customer alice` prints a token signed by it. Anyone who can read the data
folder can mint any token, which is why it is off whenever `SHOP_OIDC_ISSUER` is set, and why the
start-up log warns that it must not be used in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ecommerce_saga.identity.verifier import JwksCache, OidcClaims

DEV_ISSUER = "urn:ecommerce-saga:development-issuer"
DEV_AUDIENCE = "ecommerce-saga"
KEY_FILE = "identity/dev-signing-key.pem"
ALGORITHM = "ES256"


class DevelopmentIssuer:
    """Signs access tokens with a key kept in the data folder."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, claims: OidcClaims) -> None:
        self.claims = claims
        self._private_key = private_key
        self._public_jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
        self.kid = _thumbprint(self._public_jwk)

    @classmethod
    def load_or_create(cls, data_dir: Path, claims: OidcClaims) -> DevelopmentIssuer:
        """The issuer whose key is in `data_dir`, creating the key at first use (safe across processes)."""
        path = data_dir / KEY_FILE
        if not path.exists():
            _create_key(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return cls(key, claims)

    def jwks(self) -> dict[str, Any]:
        """The public key set, as the issuer's JWKS endpoint serves it."""
        return {"keys": [{**self._public_jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    def discovery(self, jwks_uri: str) -> dict[str, Any]:
        """The OpenID Provider metadata (the subset a resource server reads)."""
        return {
            "issuer": self.claims.issuer,
            "jwks_uri": jwks_uri,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }

    def keys(self) -> JwksCache:
        """The verifier's key source: this issuer's own keys, no HTTP."""
        jwks = self.jwks()

        async def fetch() -> Mapping[str, Any]:
            return jwks

        return JwksCache(fetch)

    def mint(
        self, customer_id: str, *, admin: bool = False, ttl_seconds: int = 3600, email: str | None = None
    ) -> str:
        """A signed access token for `customer_id`, carrying the admin role if `admin`, and `email`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.claims.issuer,
            "aud": self.claims.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            self.claims.customer_claim: customer_id,
        }
        if email is not None:
            claims["email"] = email
        if admin:
            _set_path(claims, self.claims.roles_claim, [self.claims.admin_role])
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def _create_key(path: Path) -> None:
    """Write a new key so that concurrent first starts end up sharing one (the first one linked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of an EC public key: the conventional `kid`."""
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _set_path(claims: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
