"""OIDC access tokens: a JWT's signature checked against its issuer's JWKS, then its claims.

The checks, in order: the header names an allowed asymmetric algorithm (never `none`, never an HMAC
one, so a public key can never be used as a shared secret); the key comes from the issuer's JWKS by
`kid` and its type fits the algorithm; PyJWT verifies the signature, `iss`, `aud`, `exp` and `nbf`
with a small leeway; the customer claim is a valid customer id. The JWKS is cached and fetched again
when it is older than its maximum age, or at once for a `kid` it does not hold (at most once per
`min_refresh_seconds`), so an issuer's key rotation needs no restart and a removed key stops working.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from email_validator import EmailNotValidError, validate_email

from ecommerce_saga.identity.principal import Principal, Role
from ecommerce_saga.shared.contracts import SAFE_ID_PATTERN
from ecommerce_saga.shared.recent import Recent

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
"""Asymmetric algorithms only."""

_SAFE_ID = re.compile(SAFE_ID_PATTERN)

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class InvalidTokenError(Exception):
    """The token is not acceptable; `reason` says why (logged, never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdentityProviderUnavailableError(Exception):
    """The issuer's keys could not be fetched and none are cached: nothing can be verified now."""


class JwksCache:
    """The issuer's signing keys, fetched on first use and again when stale or missing a `kid`."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        max_age_seconds: float = 300.0,
        min_refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._parsed: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key named `kid` (or the only key, if the token names none), for `algorithm`.

        A key whose type does not fit the algorithm, or whose JWK names another `alg`, is refused.
        """
        jwk = await self._jwk(kid)
        declared = jwk.get("alg")
        if declared is not None and declared != algorithm:
            raise InvalidTokenError(f"key {kid!r} is for {declared}, not {algorithm}")
        parsed = self._parsed.get((kid, algorithm))
        if parsed is None:
            try:
                parsed = jwt.PyJWK(jwk, algorithm=algorithm)
            except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
                raise InvalidTokenError(f"key {kid!r} does not fit {algorithm}: {exc}") from None
            self._parsed[(kid, algorithm)] = parsed
        return parsed

    async def _jwk(self, kid: str | None) -> dict[str, Any]:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age:
            await self._refresh(self._fetched_at)
        found = self._find(kid)
        stale_enough = self._fetched_at is not None and self._clock() - self._fetched_at >= self._min_refresh
        if found is None and stale_enough:
            await self._refresh(self._fetched_at)
            found = self._find(kid)
        if found is None:
            raise InvalidTokenError(f"no signing key with kid {kid!r}")
        return found

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            unnamed = list(self._keys.values())
            return unnamed[0] if len(unnamed) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, seen: float | None) -> None:
        async with self._lock:
            if self._fetched_at != seen:  # another request refreshed while this one waited
                return
            try:
                keys = _signing_keys(await self._fetch())
            except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
                if not self._keys:
                    raise IdentityProviderUnavailableError(f"the issuer's keys: {exc}") from None
                logger.warning("the issuer's keys could not be refreshed; keeping the cached ones: %s", exc)
                self._fetched_at = self._clock()
                return
            self._keys = {key.get("kid"): key for key in keys}
            self._parsed = {}
            self._fetched_at = self._clock()
            logger.info("fetched the issuer's signing keys", extra={"kids": sorted(map(str, self._keys))})


def _signing_keys(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = document["keys"]
    if not isinstance(keys, list):
        raise TypeError("the JWKS has no list of keys")
    return [dict(k) for k in keys if isinstance(k, Mapping) and k.get("use", "sig") == "sig"]


def remote_jwks(issuer: str, jwks_url: str | None, http: httpx.AsyncClient) -> JwksFetcher:
    """A fetcher of the issuer's JWKS, at `jwks_url` or where its discovery document says."""

    async def fetch() -> Mapping[str, Any]:
        url = jwks_url
        if url is None:
            discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
            response = await http.get(discovery_url)
            response.raise_for_status()
            discovery = response.json()
            if discovery.get("issuer") != issuer:
                raise ValueError(f"the discovery document names issuer {discovery.get('issuer')!r}")
            url = str(discovery["jwks_uri"])
        response = await http.get(url)
        response.raise_for_status()
        document: Mapping[str, Any] = response.json()
        return document

    return fetch


@dataclass(frozen=True)
class OidcClaims:
    """What a valid access token must say, and where the customer and the roles are in it."""

    issuer: str
    audience: str
    customer_claim: str = "sub"
    roles_claim: str = "realm_access.roles"
    """A dotted path: Keycloak puts realm roles at `realm_access.roles`."""
    admin_role: str = "shop-admin"
    leeway_seconds: float = 30.0


class TokenVerifier:
    """Turns an access token into a `Principal`, or says why it cannot."""

    VERIFIED_TOKENS = 4096
    """How many verified tokens are remembered (the least recently verified are forgotten first).

    A client sends the same token with every request, and checking an ES256 signature costs more
    CPU than the rest of a small request; so a token whose signature was checked with the key the
    key cache still holds (the same key object, not refetched since) is not checked again until
    its `exp`, nor is its header read again (the same string has the same header). The key's
    presence is checked each time: a key the issuer withdrew is refused as soon as the key
    cache drops it."""

    def __init__(self, claims: OidcClaims, keys: JwksCache, clock: Callable[[], float] = time.time) -> None:
        self.claims = claims
        self._keys = keys
        self._clock = clock
        self._verified: Recent[str, tuple[Principal, float, object, str | None, str]] = Recent(
            self.VERIFIED_TOKENS
        )

    async def verify(self, token: str) -> Principal:
        """The principal the token names; `InvalidTokenError` if anything is wrong with it."""
        remembered = self._verified.get(token)
        if remembered is not None:  # the same string: the header read then is the header now
            principal, expires_at, checked_with, checked_kid, checked_algorithm = remembered
            current = await self._keys.key(checked_kid, checked_algorithm)
            if checked_with is current and self._clock() < expires_at:
                return principal
            self._verified.discard(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"malformed token: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"algorithm {algorithm!r} is not allowed")
        named = header.get("kid")
        kid = named if isinstance(named, str) else None
        key = await self._keys.key(kid, algorithm)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.claims.audience,
                issuer=self.claims.issuer,
                leeway=self.claims.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"{type(exc).__name__}: {exc}") from None
        principal = self._principal(payload)
        self._verified.put(token, (principal, float(payload["exp"]), key, kid, algorithm))
        return principal

    def _principal(self, payload: Mapping[str, Any]) -> Principal:
        subject = _claim(payload, self.claims.customer_claim)
        if not isinstance(subject, str) or not _SAFE_ID.match(subject):
            raise InvalidTokenError(f"claim {self.claims.customer_claim!r} is not a valid customer id")
        roles = {Role.CUSTOMER}
        if self.claims.admin_role in _roles(_claim(payload, self.claims.roles_claim)):
            roles.add(Role.OPERATOR)
        return Principal(
            subject=subject, roles=frozenset(roles), credential="jwt", email=_email(payload.get("email"))
        )


def _claim(payload: Mapping[str, Any], path: str) -> object:
    value: object = payload
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _email(value: object) -> str | None:
    """The `email` claim if it is a valid address; otherwise none (the order must then name one)."""
    if not isinstance(value, str):
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _roles(value: object) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {role for role in value if isinstance(role, str)}
    return set()
