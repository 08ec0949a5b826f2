"""What several test files share (tests only): the repository root, the small training settings,
the refusal check, the hang guard, the lecture's batches, the checkpoint builders. Test files
import from here, never from each other."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
