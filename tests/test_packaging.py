"""An installed Waymark (a wheel, not this checkout) carries its migrations and templates."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from backend import migrations

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_migration_and_the_dashboard(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("waymark-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(n.removeprefix("backend/sql/") for n in names
                     if n.startswith("backend/sql/") and n.endswith(".sql"))
    assert shipped == sorted([m.path.name for m in migrations.discover()]
                             + [f"functions/{r.path.name}" for r in migrations.discover_repeatables()])
    assert {"backend/queries.sql", "backend/services/ingest/queries.sql",
            "backend/services/privacy/queries.sql",
            "backend/services/analytics/queries.sql", "backend/scripts/demo_data.sql",
            "backend/routes/openapi.json"} <= names
    assert "backend/templates/dashboard.html" in names
    assert {"backend/static/dashboard.js", "backend/static/dashboard.css",
            "backend/static/vendor/chartjs/chart.umd.min.js",
            "backend/static/vendor/chartjs/LICENSE.md",
            "backend/static/vendor/chartjs/VERSION"} <= names  # the dashboard works installed
    assert migrations.SQL_DIR.resolve() == (ROOT / "sql").resolve()
