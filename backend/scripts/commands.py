"""The job subcommands of ``waymark``, collected from their modules.

Each module defines click commands for one concern; add a command by appending it here.
"""

from __future__ import annotations

import click

from backend.scripts import (
    alert_jobs,
    analytics_jobs,
    backtest,
    class_jobs,
    export_jobs,
    ingest_jobs,
    privacy_jobs,
    risk_jobs,
)

ALL: list[click.Command] = [*analytics_jobs.COMMANDS, *privacy_jobs.COMMANDS,
                             *class_jobs.COMMANDS, *alert_jobs.COMMANDS,
                             *backtest.COMMANDS, *export_jobs.COMMANDS, *risk_jobs.COMMANDS,
                             *ingest_jobs.COMMANDS]
