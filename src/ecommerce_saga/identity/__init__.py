"""Who is calling: principals, OIDC access-token validation, and the development issuer.

- `Principal` and `Role`: a caller as the routes see it (customer, operator, service).
- `TokenVerifier`: validates an OIDC access token (a JWT) against its issuer's keys.
- `DevelopmentIssuer`: with no identity provider configured, the app signs its own tokens.
"""

from ecommerce_saga.identity.dev_issuer import DEV_AUDIENCE, DEV_ISSUER, DevelopmentIssuer
from ecommerce_saga.identity.principal import Principal, Role
from ecommerce_saga.identity.verifier import (
    ALLOWED_ALGORITHMS,
    IdentityProviderUnavailableError,
    InvalidTokenError,
    JwksCache,
    OidcClaims,
    TokenVerifier,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEV_AUDIENCE",
    "DEV_ISSUER",
    "DevelopmentIssuer",
    "IdentityProviderUnavailableError",
    "InvalidTokenError",
    "JwksCache",
    "OidcClaims",
    "Principal",
    "Role",
    "TokenVerifier",
]
