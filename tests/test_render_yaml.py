"""render.yaml parses, and its cron jobs are exactly the CLI's cron commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from backend.scripts.cli import main
from backend.tracking import client_ip

BLUEPRINT = Path(__file__).resolve().parent.parent / "render.yaml"

#: The CLI's cron subcommands (README "Command line"): what runs on a schedule.
CRON_COMMANDS = {"rotate-salts", "anonymize", "purge", "rollup", "score", "alerts",
                 "digest"}
#: the subcommands people run by hand; a new command must be added to one of the two sets.
MANUAL_COMMANDS = {"serve", "migrate", "forget", "export", "demo", "dev-token", "milestones",
                   "partitions",
                   "classes", "risk-backtest", "risk-calibrate",
                   # scheduled by a deployment with its own --to (a Render cron's disk is
                   # ephemeral, so render.yaml cannot hold a useful target)
                   "warehouse-export",
                   # scheduled once a deployment has an LRS (WAYMARK_XAPI_ENDPOINT); without
                   # one it exits with an error, so render.yaml does not run it by default
                   "xapi-sync",
                   # a long-running worker of the JetStream mode (render.yaml: a background
                   # worker, commented out by default)
                   "writer"}
CRON_FIELD = r"(\*|\d+(-\d+)?(,\d+(-\d+)?)*)(/\d+)?"


@pytest.fixture(scope="module")
def blueprint() -> dict[str, Any]:
    document = yaml.safe_load(BLUEPRINT.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def services(blueprint: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in blueprint["services"] if s["type"] == kind]


def subcommand(command: str) -> str:
    words = shlex.split(command)
    assert words[0] == "waymark", command
    return words[1]


def test_every_cli_command_is_classified_as_cron_or_manual() -> None:
    assert set(main.commands) == CRON_COMMANDS | MANUAL_COMMANDS


def test_cron_jobs_are_exactly_the_cli_cron_commands(blueprint: dict[str, Any]) -> None:
    crons = [subcommand(job["startCommand"]) for job in services(blueprint, "cron")]
    assert len(crons) == len(set(crons))
    assert all(name in main.commands for name in crons)  # nothing that does not exist
    assert set(crons) == CRON_COMMANDS                    # and every cron command


def test_schedules_are_valid_utc_cron_expressions_at_the_agreed_times(
        blueprint: dict[str, Any]) -> None:
    schedule = {subcommand(j["startCommand"]): j["schedule"] for j in services(blueprint, "cron")}
    for expression in schedule.values():
        fields = expression.split()
        assert len(fields) == 5 and all(re.fullmatch(CRON_FIELD, f) for f in fields), expression
    minute, hour = schedule["rotate-salts"].split()[:2]
    assert "0" in hour.split(",") and int(minute) < 15      # just after 00:00 UTC
    assert schedule["anonymize"] == schedule["purge"] == "0 2 * * *"
    assert schedule["rollup"].split() == ["5-55/10", "*", "*", "*", "*"]  # every 10 minutes
    assert schedule["score"].split()[2:] == ["*", "*", "*"]        # nightly


def test_web_service_runs_gunicorn_migrates_and_checks_health(
        blueprint: dict[str, Any], app: Flask) -> None:
    (web,) = services(blueprint, "web")
    words = shlex.split(web["startCommand"])
    assert words[:2] == ["waymark", "serve"]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert words[words.index("--port") + 1] == "$PORT"
    assert "waymark migrate" in (web.get("preDeployCommand", "") + web["startCommand"])
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert web["healthCheckPath"] in rules


def test_the_web_service_hashes_the_client_behind_renders_two_proxies(
        blueprint: dict[str, Any]) -> None:
    """Render: client → Cloudflare → Render's proxy → gunicorn. The address hashed must be
    the client's, not a Cloudflare edge's or Render's proxy's."""
    (web,) = services(blueprint, "web")
    env = {v["key"]: v.get("value") for v in web["envVars"] if "key" in v}
    trusted = int(env["WAYMARK_TRUSTED_PROXIES"])
    # the headers as Render delivers them (client 99.61.165.29, Cloudflare 104.22.17.40)
    assert client_ip("10.21.157.68", "99.61.165.29, 104.22.17.40", trusted) == "99.61.165.29"


def test_every_service_gets_database_url_from_the_blueprint_database(
        blueprint: dict[str, Any]) -> None:
    databases = {db["name"] for db in blueprint["databases"]}
    for service in blueprint["services"]:
        sources = [v["fromDatabase"] for v in service["envVars"]
                   if v.get("key") == "DATABASE_URL"]
        assert len(sources) == 1, service["name"]
        assert sources[0]["name"] in databases
        assert sources[0]["property"] == "connectionString"
