"""The README's quick start, run as written: the blocks a newcomer pastes must work.

The blocks are taken from README.md's "Quick start" section and run, in order, in one
bash process from the repository root, exactly as a newcomer would paste them into one
terminal. Two things differ, and only so that the run cannot collide with anything else
on the machine: the port (a free one instead of 5000, passed as ``PORT`` to ``make run``
and substituted in the URLs) and the data directory (``WAYMARK_DATA_DIR`` in a temporary
directory instead of ``./.waymark``). No database URL or secret is set: like a newcomer's
shell, the run uses the embedded PostgreSQL and the install's own development secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = "=====waymark-readme-block====="


def quick_start_blocks() -> list[str]:
    """The ```sh blocks of the README's "Quick start" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_quick_start_has_the_steps_it_promises() -> None:
    blocks = quick_start_blocks()
    assert len(blocks) == 4
    assert blocks[0].startswith("make run")
    assert "DELETE" in blocks[3]


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("make") is None,
                    reason="the README's snippets need curl and make")
def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    blocks = [b.replace("127.0.0.1:5000", f"127.0.0.1:{port}") for b in quick_start_blocks()]
    script = f"\necho {MARK}\n".join(blocks)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WAYMARK_", "SUPABASE_")) and k not in ("DATABASE_URL",
                                                                        "TEST_DATABASE_URL")}
    env.update(PORT=str(port), WAYMARK_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        _stop_server(proc.pid, port)
    log = (ROOT / "waymark.log")
    assert proc.returncode == 0, f"{out}\n{err}\n{log.read_text() if log.exists() else ''}"
    started, sent, seen, forgotten = out.split(MARK + "\n")

    at_risk = json.loads(started)
    assert at_risk["students"], "the demo school has students at risk at 0.6"
    assert json.loads(sent) == {"accepted": 1}
    counts, engagement, _token = seen.strip().split("\n")
    assert json.loads(counts)["counts"]["quest"] == 1
    assert json.loads(engagement)["known"] is True
    receipt_line, after = forgotten.strip().split("\n", 1)
    assert json.loads(receipt_line)["rows_removed"]["user_activity_events"] == 1
    assert json.loads(after)["total"] == 0


def _stop_server(pid: int, port: int) -> None:
    """Stop `make run` and everything it started (SIGTERM: the server stops its database)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        subprocess.run(["sleep", "0.2"], check=False)
    os.killpg(pid, signal.SIGKILL)
