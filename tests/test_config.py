"""Settings: app.config first, then the environment, then documented defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import ConfigError, Settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.load({}, {})
    assert settings.database_url is None
    assert settings.data_dir == Path(".waymark")
    assert settings.salt_period == "day"
    assert (settings.anonymize_after_days, settings.delete_after_days) == (90, 730)


def test_app_config_wins_over_environment() -> None:
    settings = Settings.load(
        {"WAYMARK_DATABASE_URL": "postgresql://from-config", "WAYMARK_SALT_PERIOD": "month"},
        {"DATABASE_URL": "postgresql://from-env", "WAYMARK_SALT_PERIOD": "day"})
    assert settings.database_url == "postgresql://from-config"
    assert settings.salt_period == "month"


def test_environment_names_and_aliases() -> None:
    settings = Settings.load({}, {
        "DATABASE_URL": "postgresql://env", "SUPABASE_JWT_SECRET": "s3cret" * 6,
        "WAYMARK_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "WAYMARK_TRUSTED_PROXIES": "1"})
    assert settings.database_url == "postgresql://env"
    assert settings.jwt_secret == "s3cret" * 6
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.trusted_proxies == 1


@pytest.mark.parametrize("env, message", [
    ({"WAYMARK_SALT_PERIOD": "week"}, "WAYMARK_SALT_PERIOD"),
    ({"WAYMARK_ANONYMIZE_AFTER_DAYS": "soon"}, "whole number"),
    ({"WAYMARK_DELETE_AFTER_DAYS": "30"}, "must not be shorter"),
    ({"WAYMARK_TRUSTED_PROXIES": "-1"}, "at least 0"),
    # an HS256 key this short can be brute-forced from one token (accepted before)
    ({"WAYMARK_JWT_SECRET": "x" * 31}, "at least 32 bytes"),
    ({"SUPABASE_JWT_SECRET": "secret"}, "at least 32 bytes"),
])
def test_bad_values_are_refused_with_a_clear_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load({}, env)
