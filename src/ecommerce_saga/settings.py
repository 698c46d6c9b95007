"""The application's settings: one pydantic-settings class, read from `SHOP_*` variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ModuleName = Literal["order", "inventory", "payment", "shipping", "notification"]
MODULE_NAMES: tuple[ModuleName, ...] = ("order", "inventory", "payment", "shipping", "notification")
DEFAULT_COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "JP", "AU")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Everything configurable. Never instantiated at import time."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    """uvicorn worker processes; more than one share the database (the embedded one is started once)."""

    mongodb_url: SecretStr | None = None
    mongodb_db: str = "ecommerce_saga"
    data_dir: Path = Path(".data")
    embedded_start_timeout_seconds: float = 20.0
    mongodb_timeout_seconds: float = Field(default=2.0, gt=0)
    """How long an operation waits for an unreachable database before the request answers 503."""
    mongodb_operation_timeout_seconds: float = Field(default=3.0, gt=0)
    """The bound on every database operation (PyMongo's timeoutMS), for a database that stops answering."""

    service_token: SecretStr | None = None
    admin_token: SecretStr | None = None

    worker_id: str = Field(default_factory=_default_worker_id)
    saga_lease_seconds: float = Field(default=15.0, gt=0)
    saga_recovery_interval_seconds: float = Field(default=5.0, gt=0)
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

    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

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
    def uses_embedded_database(self) -> bool:
        """True when no MongoDB URL is configured and the embedded server is started."""
        return self.mongodb_url is None

    @property
    def loads_demo_catalog(self) -> bool:
        """Demo data loads by default only on the embedded database."""
        if self.demo_catalog is None:
            return self.uses_embedded_database
        return self.demo_catalog
