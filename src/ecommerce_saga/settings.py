"""The application's settings: one pydantic-settings class, read from `SHOP_*` variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ecommerce_saga.secret_files import apply_secret_files, secret_fields

SmtpTls = Literal["starttls", "tls", "none"]
_DEFAULT_SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_ADDRESS = r"^[^@\s<>\"]+@[^@\s<>\"]+$"

ModuleName = Literal["order", "inventory", "payment", "shipping", "notification"]
MODULE_NAMES: tuple[ModuleName, ...] = ("order", "inventory", "payment", "shipping", "notification")
DEFAULT_COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "JP", "AU")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Everything configurable. Never instantiated at import time."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore", hide_input_in_errors=True)
    """Errors never echo their input: it holds the secrets."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """uvicorn worker processes; more than one share the database (the embedded one is started once)."""

    mongodb_url: SecretStr | None = None
    mongodb_db: str = "ecommerce_saga"
    data_dir: Path = Path(".data")
    mongodb_start_timeout_seconds: float = Field(default=20.0, gt=0)
    """How long start-up waits for the database (starting the embedded one, if any) before giving up."""
    mongodb_timeout_seconds: float = Field(default=2.0, gt=0)
    """How long an operation waits for an unreachable database before the request answers 503."""
    mongodb_operation_timeout_seconds: float = Field(default=3.0, gt=0)
    """The bound on every database operation (PyMongo's timeoutMS), for a database that stops answering."""

    service_token: SecretStr | None = None
    """The service token(s): comma-separated, current first (rotation: add the next, then drop the old)."""
    admin_token: SecretStr | None = None
    """The admin token(s) of operators' scripts and the CLI: comma-separated, like the service token."""

    oidc_issuer: str | None = None
    """The identity provider's issuer URL; unset: the app runs its own development issuer."""
    oidc_audience: str | None = None
    """The `aud` an access token must carry (required with an issuer)."""
    oidc_jwks_url: AnyHttpUrl | None = None
    """Where the issuer's keys are; default: from its `/.well-known/openid-configuration`."""
    oidc_customer_claim: str = "sub"
    oidc_roles_claim: str = "realm_access.roles"
    """A dotted path to the roles in a token (Keycloak: `realm_access.roles`)."""
    oidc_admin_role: str = "shop-admin"
    oidc_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    oidc_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    """How long the issuer's keys are used before they are fetched again (an unknown `kid` refetches)."""

    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """The management port serving `/metrics` (0: none); never the API's port."""
    metrics_host: str | None = None
    """Where the management port listens; default: the API's host."""

    worker_id: str = Field(default_factory=_default_worker_id)
    saga_lease_seconds: float = Field(default=15.0, gt=0)
    saga_recovery_interval_seconds: float = Field(default=5.0, gt=0)
    saga_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    """On shutdown (SIGTERM), how long saga attempts in flight may finish before they are cancelled;
    keep it below the pod's terminationGracePeriodSeconds (30 by default) minus the HTTP drain."""
    saga_unknown_definition_park_seconds: float = Field(default=600.0, gt=0)
    """How long a saga whose definition version this process lacks may wait for one that has it
    (after this process first saw it unclaimed) before this process parks it (saga.unknown_definition)."""
    saga_compensation_attempts: int = Field(default=30, ge=1)
    """Attempts of a compensation, or of a step past the pivot, before the saga is parked."""

    order_wait_seconds: float = Field(default=5.0, ge=0)
    order_orphan_seconds: float = Field(default=30.0, gt=0)
    """Age after which a PENDING order without a saga (its request died in between) is resumed."""
    demo_catalog: bool | None = None
    shipping_countries: Annotated[tuple[str, ...], NoDecode] = DEFAULT_COUNTRIES

    modules: Annotated[tuple[ModuleName, ...], NoDecode] = MODULE_NAMES
    order_url: AnyHttpUrl | None = None
    inventory_url: AnyHttpUrl | None = None
    payment_url: AnyHttpUrl | None = None
    shipping_url: AnyHttpUrl | None = None
    notification_url: AnyHttpUrl | None = None
    http_timeout_seconds: float = Field(default=5.0, gt=0)

    saga_step_attempts: int = Field(default=10, ge=1)
    saga_step_timeout_seconds: float = Field(default=10.0, gt=0)

    smtp_host: str | None = None
    """The mail server (relay) notifications are sent to; unset: the development outbox."""
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    """Default: 587 with STARTTLS, 465 with TLS, 25 without."""
    smtp_tls: SmtpTls = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    """A file holding the password (a mounted Secret); read at start-up."""
    smtp_from: str = Field(default="orders@example.com", pattern=_ADDRESS, max_length=254)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long connecting, and each SMTP command, may take."""
    smtp_ca_file: Path | None = None
    """CA certificates to trust for the mail server's TLS (default: the system's)."""
    shop_name: str = Field(default="ecommerce-saga shop", min_length=1, max_length=100)
    shop_support_email: str = Field(default="support@example.com", pattern=_ADDRESS, max_length=254)

    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    @field_validator("smtp_host", "smtp_username", "smtp_password", "smtp_password_file", mode="before")
    @classmethod
    def _empty_smtp_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("oidc_issuer", "oidc_audience", "oidc_jwks_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, values: object) -> object:
        """`SHOP_<NAME>_FILE` for every secret setting (see secret_files.py)."""
        if not isinstance(values, dict):
            return values
        prefix = cls.model_config.get("env_prefix", "")
        return apply_secret_files(values, secret_fields(cls.model_fields), os.environ, prefix)

    @field_validator("modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
            return names or MODULE_NAMES
        return value

    @model_validator(mode="after")
    def _check_topology(self) -> Settings:
        if self.modules and len(set(self.modules)) != len(self.modules):
            raise ValueError("SHOP_MODULES names a module twice")
        if self.smtp_password is not None and self.smtp_password_file is not None:
            raise ValueError("set SHOP_SMTP_PASSWORD or SHOP_SMTP_PASSWORD_FILE, not both")
        if self.oidc_issuer is not None and not self.oidc_audience:
            raise ValueError("SHOP_OIDC_AUDIENCE is required when SHOP_OIDC_ISSUER is set")
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError(
                "SHOP_METRICS_PORT must differ from SHOP_PORT: /metrics is not for the API's callers"
            )
        if self.is_split and self.service_token is None:
            raise ValueError("SHOP_SERVICE_TOKEN is required when SHOP_MODULES hosts only some modules")
        missing = [
            f"SHOP_{name.upper()}_URL"
            for name in self.needed_modules
            if name not in self.modules and self.url_of(name) is None
        ]
        if missing:
            hosted = ",".join(self.modules)
            raise ValueError(f"this process hosts {hosted} and needs {', '.join(missing)} to reach the rest")
        return self

    @property
    def is_split(self) -> bool:
        """True when this process hosts only some of the modules."""
        return set(self.modules) != set(MODULE_NAMES)

    @property
    def needed_modules(self) -> tuple[str, ...]:
        """The modules this process calls: the order module's saga calls all the others."""
        return MODULE_NAMES if "order" in self.modules else tuple(self.modules)

    def url_of(self, module: str) -> str | None:
        """Where `module` lives when it is not hosted here."""
        url = getattr(self, f"{module}_url")
        return str(url).rstrip("/") if url is not None else None

    @field_validator("shipping_countries", mode="before")
    @classmethod
    def _split_countries(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @property
    def smtp_port_or_default(self) -> int:
        """The mail server's port: the configured one, or the usual one for `smtp_tls`."""
        return self.smtp_port or _DEFAULT_SMTP_PORTS[self.smtp_tls]

    @property
    def outbox_dir(self) -> Path:
        """Where the development outbox keeps its `.eml` files (no SMTP server configured)."""
        return self.data_dir / "outbox"

    @property
    def uses_development_issuer(self) -> bool:
        """True when no identity provider is configured and the app signs its own tokens."""
        return self.oidc_issuer is None

    @property
    def uses_embedded_database(self) -> bool:
        """True when no MongoDB URL is configured and the embedded server is started."""
        return self.mongodb_url is None

    @property
    def loads_demo_catalog(self) -> bool:
        """Demo data loads by default only on the embedded database."""
        if self.demo_catalog is None:
            return self.uses_embedded_database
        return self.demo_catalog
