"""Regenerate tests/regression/expected/ from the current code (see regression_run.py for when)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from regression_run import run_pipeline, write_expected  # noqa: E402

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        write_expected(*run_pipeline(Path(tmp)))
    print("wrote tests/regression/expected/")
