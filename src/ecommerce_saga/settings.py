"""The application's settings: one pydantic-settings class, read from `SHOP_*` variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MODULE_NAMES = ("order", "inventory", "payment", "shipping", "notification")
DEFAULT_COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "JP", "AU")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Everything configurable. Never instantiated at import time."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    mongodb_url: SecretStr | None = None
    mongodb_db: str = "ecommerce_saga"
    data_dir: Path = Path(".data")
    embedded_start_timeout_seconds: float = 20.0

    service_token: SecretStr | None = None
    admin_token: SecretStr | None = None

    worker_id: str = Field(default_factory=_default_worker_id)
    saga_lease_seconds: float = Field(default=15.0, gt=0)
    saga_recovery_interval_seconds: float = Field(default=5.0, gt=0)
    saga_compensation_attempts: int = Field(default=8, ge=1)

    order_wait_seconds: float = Field(default=5.0, ge=0)
    demo_catalog: bool | None = None
    shipping_countries: Annotated[tuple[str, ...], NoDecode] = DEFAULT_COUNTRIES

    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

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
