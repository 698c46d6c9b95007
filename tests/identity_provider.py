"""A test identity provider: an HTTP server serving OIDC discovery and a JWKS, and tokens minted here.

It holds RSA and EC signing keys, can add and remove keys while the shop runs (rotation), and mints
tokens the way Keycloak does (`sub`, `aud`, `realm_access.roles`) — or broken on purpose.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "ecommerce-saga-tests"
ADMIN_ROLE = "shop-admin"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class TestIdentityProvider:
    """Serves `/.well-known/openid-configuration` and `/jwks` on a free loopback port."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self._keys: dict[str, tuple[PrivateKey, str]] = {}
        self._lock = threading.Lock()
        self.jwks_requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks"}
                elif self.path == "/jwks":
                    with provider._lock:
                        provider.jwks_requests += 1
                    body = provider.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.rsa_kid = self.add_key("RS256")
        self.ec_kid = self.add_key("ES256")

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def add_key(self, algorithm: str = "RS256") -> str:
        """A new signing key in the JWKS; returns its `kid`."""
        key: PrivateKey
        if algorithm.startswith("ES"):
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._keys[kid] = (key, algorithm)
        return kid

    def remove_key(self, kid: str) -> None:
        """Take a key out of the JWKS (tokens it signed must stop working)."""
        with self._lock:
            del self._keys[kid]

    def jwks(self) -> dict[str, Any]:
        """The public keys."""
        with self._lock:
            keys = list(self._keys.items())
        published = []
        for kid, (key, algorithm) in keys:
            public = key.public_key()
            jwk_json = (
                ECAlgorithm.to_jwk(public)
                if isinstance(public, ec.EllipticCurvePublicKey)
                else RSAAlgorithm.to_jwk(public)
            )
            published.append({**json.loads(jwk_json), "kid": kid, "use": "sig", "alg": algorithm})
        return {"keys": published}

    def private_key(self, kid: str) -> PrivateKey:
        """The private key of `kid` (for tests that forge tokens)."""
        return self._keys[kid][0]

    def claims(self, subject: str, *, admin: bool = False, ttl: int = 600, **extra: Any) -> dict[str, Any]:
        """The claims of a valid token for `subject`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": subject, "iat": now, "nbf": now, "exp": now + ttl,
            "realm_access": {"roles": [ADMIN_ROLE] if admin else ["offline_access"]},
        }  # fmt: skip
        claims.update(extra)
        return claims

    def token(self, subject: str, *, admin: bool = False, kid: str | None = None, **claims: Any) -> str:
        """A token signed by `kid` (the RSA key unless given)."""
        kid = kid or self.rsa_kid
        key, algorithm = self._keys[kid]
        return jwt.encode(
            self.claims(subject, admin=admin, **claims), key, algorithm=algorithm, headers={"kid": kid}
        )

    def settings(self) -> dict[str, str]:
        """The `SHOP_*` variables that make the shop trust this provider."""
        return {"SHOP_OIDC_ISSUER": self.issuer, "SHOP_OIDC_AUDIENCE": AUDIENCE}


_shared: TestIdentityProvider | None = None
_shared_lock = threading.Lock()


def shared_provider() -> TestIdentityProvider:
    """The identity provider of this test process, started on first use."""
    global _shared  # noqa: PLW0603 - one server per test process
    with _shared_lock:
        if _shared is None:
            _shared = TestIdentityProvider()
        return _shared


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def customer_headers(customer_id: str) -> dict[str, str]:
    """Headers carrying a customer's token from the shared provider."""
    return bearer(shared_provider().token(customer_id))
