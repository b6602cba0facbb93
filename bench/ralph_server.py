"""Ralph (``ralph-malph``), a real LRS, for the xAPI tests and bench: run with Ralph's own
Python (``.venv-services``, made by ``make service-deps``) by bench/stand_ins.py, never imported.

Ralph 5.1.0's file-system LRS backend creates its one file on the first write and refuses
every later write (its default operation is CREATE: "Statements bulk indexation failed").
Appending is what an LRS on files must do, so this launcher sets the backend's default
operation to APPEND before serving; everything else (validation, ids already stored,
queries by agent, ``more`` links, basic auth) is Ralph's own.

Usage: python ralph_server.py PORT  (RALPH_* variables: see bench/stand_ins.py)
"""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

if __name__ == "__main__":
    uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
