"""`SHOP_<NAME>_FILE`: secret settings read from files, as Kubernetes mounts Secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ecommerce_saga.secret_files import SecretFileError, apply_secret_files, read_secret_file
from ecommerce_saga.settings import Settings

SECRET_VARIABLES = ("SHOP_MONGODB_URL", "SHOP_SERVICE_TOKEN", "SHOP_ADMIN_TOKEN")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in SECRET_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(f"{variable}_FILE", raising=False)


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_reads_every_secret_setting_from_its_file_when_file_variables_are_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "SHOP_MONGODB_URL_FILE", str(_write(tmp_path, "url", "mongodb://app:pw@db:27017/shop\n"))
    )
    monkeypatch.setenv("SHOP_SERVICE_TOKEN_FILE", str(_write(tmp_path, "service", "  current-token  \n")))
    monkeypatch.setenv("SHOP_ADMIN_TOKEN_FILE", str(_write(tmp_path, "admin", "admin-token")))

    settings = Settings()

    assert settings.mongodb_url is not None
    assert settings.mongodb_url.get_secret_value() == "mongodb://app:pw@db:27017/shop"
    assert settings.service_token is not None
    assert settings.service_token.get_secret_value() == "current-token"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "admin-token"


def test_passes_a_comma_separated_token_list_through_unchanged_when_read_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_SERVICE_TOKEN_FILE", str(_write(tmp_path, "tokens", "current,next\n")))

    settings = Settings()

    assert settings.service_token is not None
    assert settings.service_token.get_secret_value() == "current,next"


def test_rejects_a_secret_given_both_directly_and_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_ADMIN_TOKEN", "direct-secret-value")
    monkeypatch.setenv("SHOP_ADMIN_TOKEN_FILE", str(_write(tmp_path, "admin", "file-secret-value")))

    with pytest.raises(ValidationError) as caught:
        Settings()

    message = str(caught.value)
    assert "set SHOP_ADMIN_TOKEN or SHOP_ADMIN_TOKEN_FILE, not both" in message
    assert "direct-secret-value" not in message
    assert "file-secret-value" not in message


def test_rejects_a_file_variable_naming_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("SHOP_SERVICE_TOKEN_FILE", str(missing))

    with pytest.raises(
        ValidationError, match=r"SHOP_SERVICE_TOKEN_FILE names .*nowhere, which does not exist"
    ):
        Settings()


def test_rejects_an_empty_secret_file_without_showing_its_content(tmp_path: Path) -> None:
    path = _write(tmp_path, "blank", " \n\t\n")

    with pytest.raises(SecretFileError, match="which is empty"):
        read_secret_file("SHOP_ADMIN_TOKEN_FILE", str(path))


def test_rejects_a_file_variable_naming_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="cannot be read"):
        read_secret_file("SHOP_ADMIN_TOKEN_FILE", str(tmp_path))


def test_ignores_an_empty_file_variable_and_leaves_non_secret_settings_alone(tmp_path: Path) -> None:
    path = _write(tmp_path, "db", "shop")
    environ = {"SHOP_ADMIN_TOKEN_FILE": "", "SHOP_MONGODB_DB_FILE": str(path)}

    values = apply_secret_files({"mongodb_db": "given"}, ["admin_token"], environ, "SHOP_")

    assert values == {"mongodb_db": "given"}


def test_matches_file_variables_case_insensitively_like_the_settings_do(tmp_path: Path) -> None:
    path = _write(tmp_path, "token", "lower-case-variable")

    values = apply_secret_files({}, ["service_token"], {"shop_service_token_file": str(path)}, "SHOP_")

    assert values == {"service_token": "lower-case-variable"}


def test_waits_for_the_database_for_the_configured_start_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_MONGODB_START_TIMEOUT_SECONDS", "180")

    assert Settings().mongodb_start_timeout_seconds == 180
