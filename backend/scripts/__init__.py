"""The ``waymark`` command line; its subcommands are also the cron jobs."""
