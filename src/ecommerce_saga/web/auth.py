"""Who may call a route: bearer credentials turned into a `Principal`, and the guards routes depend on.

Three kinds of credential are accepted in `Authorization: Bearer …`:

- the service token(s) — the modules' saga endpoints, between processes in split mode;
- the admin token(s) — operators' scripts and the CLI: everything, for any customer;
- an OIDC access token (a JWT) — a customer, or an operator if it carries the admin role.

Each static setting holds a comma-separated list (current and next), so a token can be rotated
without downtime. Failures are problem+json: 401 with `WWW-Authenticate` for a missing or bad
credential, 403 for a good one without the right; the reason is logged at INFO, never the token.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ecommerce_saga.identity import (
    IdentityProviderUnavailableError,
    InvalidTokenError,
    Principal,
    Role,
    TokenVerifier,
)

logger = logging.getLogger(__name__)

REALM = "ecommerce-saga"

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="bearer",
    description="`Authorization: Bearer <token>`: a customer's or operator's access token (JWT), "
    "the admin token, or (saga endpoints) the service token.",
)

Guard = Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]


class AuthError(Exception):
    """A request refused for who sent it (401) or what they may do (403); rendered as problem+json."""

    titles: ClassVar[dict[int, str]] = {401: "Unauthorized", 403: "Forbidden", 503: "Service unavailable"}

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers

    @property
    def title(self) -> str:
        """The problem's title."""
        return self.titles.get(self.status, "Error")


def forbidden(detail: str) -> AuthError:
    """403: the caller is known but may not do this."""
    return AuthError(
        403,
        "auth.forbidden",
        detail,
        {"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"'},
    )


def split_tokens(configured: str | None) -> tuple[str, ...]:
    """The tokens of a comma-separated setting (current and next, during a rotation)."""
    return tuple(part.strip() for part in (configured or "").split(",") if part.strip())


class Authenticator:
    """Checks credentials and provides the guards (`customer`, `operator`, `service`) routes depend on."""

    def __init__(
        self,
        *,
        service_tokens: Sequence[str],
        admin_tokens: Sequence[str],
        verifier: TokenVerifier | None = None,
    ) -> None:
        if not service_tokens or not admin_tokens:
            raise ValueError("at least one service token and one admin token are needed")
        self.service_tokens = tuple(t.encode() for t in service_tokens)
        self.admin_tokens = tuple(t.encode() for t in admin_tokens)
        self.verifier = verifier
        self.customer = self._guard({Role.CUSTOMER, Role.OPERATOR}, "a customer's or an operator's token")
        """Customers (for themselves) and operators."""
        self.operator = self._guard({Role.OPERATOR}, "an operator's token")
        """Operators only: the admin token or a token with the admin role."""
        self.service = self._guard({Role.SERVICE}, "the service token")
        """Other modules of the shop only: the service token."""

        async def anyone(
            request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
        ) -> Principal | None:
            return None if credentials is None else await self._principal(request, credentials)

        self.anyone = anyone
        """Anonymous callers too (None); a credential, if sent, must be valid."""

    @property
    def first_service_token(self) -> str:
        """The token this process sends to other modules (the first of the list)."""
        return self.service_tokens[0].decode()

    async def authenticate(self, token: str) -> Principal:
        """The principal `token` proves; `InvalidTokenError` if it proves none."""
        presented = token.encode()
        roles: set[Role] = set()
        for admin in self.admin_tokens:  # every comparison runs: constant time per list
            if secrets.compare_digest(presented, admin):
                roles.add(Role.OPERATOR)
        for service in self.service_tokens:
            if secrets.compare_digest(presented, service):
                roles.add(Role.SERVICE)
        if roles:
            kind = "admin-token" if Role.OPERATOR in roles else "service-token"
            return Principal(subject=kind, roles=frozenset(roles), credential=kind)
        if self.verifier is None or token.count(".") != 2:
            raise InvalidTokenError("not a known token")
        return await self.verifier.verify(token)

    async def _principal(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> Principal:
        if credentials is None:
            logger.info("refused a request without a bearer token", extra={"path": request.url.path})
            raise AuthError(
                401, "auth.token_missing", "a bearer token is required",
                {"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )  # fmt: skip
        try:
            return await self.authenticate(credentials.credentials)
        except InvalidTokenError as exc:
            logger.info("refused a token: %s", exc.reason, extra={"path": request.url.path})
            raise AuthError(
                401, "auth.invalid_token", "the bearer token is not valid",
                {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
            ) from None  # fmt: skip
        except IdentityProviderUnavailableError as exc:
            logger.warning("cannot verify tokens: %s", exc, extra={"path": request.url.path})
            raise AuthError(
                503, "auth.identity_provider_unavailable",
                "the identity provider's keys cannot be fetched; retry later", {"Retry-After": "5"},
            ) from None  # fmt: skip

    def _guard(self, allowed: set[Role], needs: str) -> Guard:
        async def guard(
            request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
        ) -> Principal:
            principal = await self._principal(request, credentials)
            if not allowed & principal.roles:
                logger.info(
                    "refused a %s: %s is required",
                    principal.credential,
                    needs,
                    extra={"path": request.url.path},
                )
                raise forbidden(f"this operation needs {needs}")
            return principal

        return guard


def customer_scope(principal: Principal, requested: str | None) -> str | None:
    """The customer a list is about: any (or `requested`) for an operator, only their own for a customer."""
    if principal.is_operator:
        return requested
    own = principal.customer_id
    if requested is not None and requested != own:
        raise forbidden("a customer may list only their own records")
    return own
