"""Where the WCS sample bodies are: ``shared/wcs/samples`` beside the clone, else the
workplace's ``/work/shared`` (a clone made elsewhere still finds them)."""

from __future__ import annotations

from pathlib import Path

BESIDE_THE_CLONE = Path(__file__).resolve().parents[2] / "shared" / "wcs" / "samples"
WORKPLACE = Path("/work/shared/wcs/samples")
SAMPLES = BESIDE_THE_CLONE if BESIDE_THE_CLONE.is_dir() else WORKPLACE
