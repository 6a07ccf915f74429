"""Where things are in the repository, spelled once."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The example definition `mql init` writes and the demo uses: most tests score against it.
EXAMPLE = ROOT / "src" / "mqlengine" / "definition" / "templates" / "mql.yaml"
