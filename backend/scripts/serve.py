"""``waymark serve``: the production WSGI server (gunicorn), never Flask's dev server.

The access log format leaves out the client address, the user agent and the query
string: Waymark does not keep raw IPs or user agents, and neither does its log.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from backend import create_app

#: time, method, path (no query string), status, bytes, duration — no IP, no UA.
ACCESS_LOG_FORMAT = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


class WaymarkServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application that builds Waymark's app in each worker."""

    def __init__(self, options: dict[str, Any], app_config: dict[str, Any]) -> None:
        self.options = options
        self.app_config = app_config
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.app_config)


def gunicorn_options(host: str, port: int, workers: int, threads: int,
                     access_log: bool) -> dict[str, Any]:
    """Gunicorn settings: threaded workers, graceful shutdown that lets the writer flush."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-" if access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "graceful_timeout": 15,
        "timeout": 60,
        "keepalive": 5,
        "proc_name": "waymark",
    }


def serve(host: str, port: int, workers: int, threads: int, access_log: bool,
          app_config: dict[str, Any]) -> None:
    """Run the server in the foreground until SIGTERM/SIGINT."""
    WaymarkServer(gunicorn_options(host, port, workers, threads, access_log), app_config).run()
