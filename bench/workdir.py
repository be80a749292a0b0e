"""The scratch directory of one benchmark run."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory for a run's logs, spools and load files (``bench.receiver``'s are
    40 MB): deleted when the run succeeds, kept and named on stderr when it fails, so its logs
    can be read."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        print(f"the run's files are kept in {path}", file=sys.stderr, flush=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
