"""``waymark serve``: the production WSGI server (gunicorn), never Flask's dev server.

The access log format leaves out the client address, the user agent and the query
string: Waymark does not keep raw IPs or user agents, and neither does its log.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from backend import create_app
from backend.private_logs import logged_path

#: time, method, path (no query string), status, bytes, duration — no IP, no UA.
ACCESS_LOG_FORMAT = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


_PEER = re.compile(r"\bip=\S+?(?=:|\s|$)")


class PrivateLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, minus what Waymark promises not to keep: the client's address
    (gunicorn writes ``Invalid request from ip=…`` for a malformed request), the decoded
    path (``%0A`` became a line break) and user ids in paths."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = logged_path(str(environ.get("RAW_URI") or environ.get("PATH_INFO") or ""))
        for key in ("h", "r", "q", "a", "f"):  # address, request line, query, UA, referrer
            atoms[key] = "-"
        return atoms

    def _private(self, msg: object, args: tuple[Any, ...]) -> str:
        text = str(msg) % args if args else str(msg)
        return _PEER.sub("ip=-", text)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().critical(self._private(msg, args), **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().error(self._private(msg, args), **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().warning(self._private(msg, args), **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().info(self._private(msg, args), **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().debug(self._private(msg, args), **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().exception(self._private(msg, args), **kwargs)


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
        "logger_class": PrivateLogger,
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
