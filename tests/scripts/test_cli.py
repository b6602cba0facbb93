"""The `waymark` command itself: migrate, dev-token, the local-mode secret, serve's options."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import jwt
import psycopg
import pytest
from click.testing import CliRunner

from backend.config import Settings, with_dev_secret
from backend.scripts import cli
from backend.scripts.cli import main
from backend.scripts.serve import ACCESS_LOG_FORMAT, gunicorn_options


def test_migrate_twice_reports_then_does_nothing(empty_db_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["migrate"], env={"DATABASE_URL": empty_db_url})
    assert first.exit_code == 0, first.output
    assert "applied=" in first.output and "applied=0" not in first.output
    second = runner.invoke(main, ["migrate"], env={"DATABASE_URL": empty_db_url})
    assert second.exit_code == 0, second.output
    assert "applied=0 names=none" in second.output
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM waymark.schema_migrations").fetchone()[0] > 0  # type: ignore[index]


def test_migrate_on_an_unreachable_server_fails_clearly() -> None:
    result = CliRunner().invoke(main, ["migrate"],
                                env={"DATABASE_URL": "postgresql://x@127.0.0.1:1/none?connect_timeout=1"})
    assert result.exit_code != 0


def test_dev_token_is_a_supabase_style_token() -> None:
    secret = "a-test-secret-that-is-long-enough-for-hs256!"
    result = CliRunner().invoke(
        main, ["dev-token", "6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e", "--role", "parent"],
        env={"WAYMARK_JWT_SECRET": secret, "DATABASE_URL": "postgresql://unused"})
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), secret, algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == "6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e"
    assert claims["role"] == "authenticated"
    assert claims["app_metadata"] == {"role": "parent"}
    assert claims["exp"] - claims["iat"] == 12 * 3600


def test_dev_token_user_option_and_random_users() -> None:
    """--user names the same person every time; without it each call is a new user."""
    env = {"WAYMARK_JWT_SECRET": "s" * 40, "DATABASE_URL": "postgresql://x"}
    user = "6f1c2c7e-7f57-4b7a-9d0b-1f6d2a3c4b5e"

    def subject(*args: str) -> str:
        result = CliRunner().invoke(main, ["dev-token", *args], env=env)
        assert result.exit_code == 0, result.output
        return str(jwt.decode(result.output.strip(), "s" * 40, algorithms=["HS256"],
                              audience="authenticated")["sub"])

    assert subject("--user", user) == user == subject(user, "--user", user)
    assert subject() != subject()
    clash = CliRunner().invoke(main, ["dev-token", user, "--user", str(uuid.uuid4())], env=env)
    assert clash.exit_code == 2 and "give the user once" in clash.output


def test_dev_token_refuses_a_bad_user_id() -> None:
    result = CliRunner().invoke(main, ["dev-token", "not-a-uuid"],
                                env={"WAYMARK_JWT_SECRET": "s" * 40, "DATABASE_URL": "postgresql://x"})
    assert result.exit_code == 2
    assert "uuid" in result.output


def test_local_mode_creates_one_private_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = with_dev_secret(settings)
    second = with_dev_secret(settings)
    assert first.dev_mode and first.jwt_secret and len(first.jwt_secret) >= 48
    assert second.jwt_secret == first.jwt_secret
    mode = stat.S_IMODE((tmp_path / "data" / "dev-jwt-secret").stat().st_mode)
    assert mode == 0o600


def test_local_mode_never_applies_to_a_configured_deployment(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, database_url="postgresql://prod/db")
    assert with_dev_secret(configured) is configured
    assert not (tmp_path / "dev-jwt-secret").exists()


def test_access_log_has_no_client_address_or_user_agent() -> None:
    options = gunicorn_options("127.0.0.1", 5000, 2, 8, access_log=True)
    fmt = options["access_log_format"]
    assert fmt == ACCESS_LOG_FORMAT
    for atom in ("%(h)s", "%(a)s", "%({x-forwarded-for}i)s", "%(q)s", "%(r)s", "%(f)s"):
        assert atom not in fmt
    assert options["worker_class"] == "gthread"


@pytest.mark.parametrize(("ack", "args", "threads"), [
    ("commit", [], 32), ("queued", [], 8), ("commit", ["--threads", "12"], 12)])
def test_serve_gives_durable_requests_more_threads_by_default(
        db_url: str, monkeypatch: pytest.MonkeyPatch, ack: str, args: list[str],
        threads: int) -> None:
    """A durable request holds its thread until the commit: with WAYMARK_ACK=commit the
    default is 32 threads per worker, with queued 8; --threads always wins. (gunicorn itself
    is not started: what it is given is recorded.)"""
    given: list[int] = []
    monkeypatch.setattr(cli, "run_server",
                        lambda host, port, workers, n, *rest: given.append(n))
    result = CliRunner().invoke(main, ["serve", *args], env={
        "DATABASE_URL": db_url, "WAYMARK_ACK": ack, "WAYMARK_JWT_SECRET": "s" * 40})
    assert result.exit_code == 0, result.output
    assert given == [threads]
