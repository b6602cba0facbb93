"""The job subcommands of ``waymark``, collected from their modules.

Each module defines click commands for one concern; add a command by appending it here.
"""

from __future__ import annotations

import click

ALL: list[click.Command] = []

from backend.scripts import analytics_jobs  # noqa: E402

ALL += analytics_jobs.COMMANDS

from backend.scripts import privacy_jobs  # noqa: E402

ALL += privacy_jobs.COMMANDS
