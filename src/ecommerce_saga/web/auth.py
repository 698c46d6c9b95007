"""Bearer-token guards: the service token (saga endpoints) and the admin token (catalog, operators)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


def _guard(expected: str, realm: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    def check(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"the {realm} token is required")
        if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {realm} token is not valid")

    return check


@dataclass(frozen=True)
class Tokens:
    """The tokens the app checks. Never logged."""

    service: str
    admin: str

    @property
    def require_service(self) -> Callable[[HTTPAuthorizationCredentials | None], None]:
        """A dependency that admits only callers presenting the service token."""
        return _guard(self.service, "service")

    @property
    def require_admin(self) -> Callable[[HTTPAuthorizationCredentials | None], None]:
        """A dependency that admits only callers presenting the admin token."""
        return _guard(self.admin, "admin")
