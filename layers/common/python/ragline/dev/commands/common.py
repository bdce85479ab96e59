"""What every command sets up before it imports the library: logging, data dir, metrics.

Settings are read once per process, so every option that feeds them (the data
directory) is put in the environment before the library is imported.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def configure_logging(level: int) -> None:
    """Our own log lines, on stderr, apart from the handlers' JSON logs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    dev_logger = logging.getLogger("ragline.dev")
    dev_logger.handlers[:] = [handler]
    dev_logger.setLevel(level)
    dev_logger.propagate = False  # "ragline" may be the handlers' Powertools logger


def use_data_dir(data_dir: Path | None) -> None:
    """Point the settings at this data directory, when one is given."""
    if data_dir is not None:
        os.environ["RAGLINE_DATA_DIR"] = str(data_dir.resolve())


def without_emf() -> None:
    """Keep EMF metric documents off stdout: no log agent reads them here, people do.

    The query log in the store still records every answer.
    """
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
