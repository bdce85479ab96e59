"""Docker-free packaging: the `ragline` layer built by pip for the Lambda platform.

CDK's local bundling runs `pip install --platform ... --only-binary=:all:` on this
machine, so the layer gets the manylinux wheels Lambda needs (psycopg's and numpy's
compiled extensions) whatever the build machine is. The library is copied beside its
dependencies without what Lambda never runs: `ragline/dev`, the local stack, and
`ragline/evaluation`, the `ragline eval` use case. The layer then gets its bytecode:
`/opt` is read-only on Lambda, so a layer without `.pyc` compiles every module it imports
on every cold start (bench/cold_start.py measures the difference).
"""

from __future__ import annotations

import compileall
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from py_compile import PycInvalidationMode
from typing import TYPE_CHECKING, cast

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

if TYPE_CHECKING:
    from stacks.settings import DeploymentSettings

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = REPOSITORY_ROOT / "layers" / "common"
FUNCTIONS_DIR = REPOSITORY_ROOT / "functions"
REQUIREMENTS = LAYER_DIR / "requirements.txt"
LIBRARY_DIR = LAYER_DIR / "python" / "ragline"

# The runtime is the build machine's Python (pyproject's 3.11): bytecode is only valid
# for the interpreter version that compiled it, and shipping it is what spares each
# cold start the compilation.
PYTHON_VERSION = "3.11"
RUNTIME = lambda_.Runtime.PYTHON_3_11
# Lambda's limit on a function plus all its layers, unzipped.
UNZIPPED_LIMIT_BYTES = 262_144_000
# The Python 3.11 runtime runs on Amazon Linux 2 (glibc 2.26): wheels up to
# manylinux_2_26 load there (pip also takes the older manylinux_2_x tags below it).
PIP_PLATFORMS = {
    "x86_64": ("manylinux_2_26_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_26_aarch64", "manylinux2014_aarch64"),
}
ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
# The runtime ships boto3; a second botocore in the layer would only add 30 MB and
# shadow the runtime's (aws-xray-sdk pulls it in).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# What never goes into an asset: caches, build metadata, and the top-level ragline
# packages no Lambda runs (the local stack, the evaluation).
SOURCE_EXCLUDES = ("__pycache__", "*.pyc", "*.egg-info")
NOT_SHIPPED = ("dev", "evaluation")
LAYER_SOURCE_EXCLUDES = [
    "requirements.txt",
    *(f"python/ragline/{package}" for package in NOT_SHIPPED),
    *(f"**/{p}" for p in SOURCE_EXCLUDES),
]


class PackagingError(RuntimeError):
    """The layer could not be built, or it is too large for Lambda."""


def directory_size(path: Path) -> int:
    """Bytes of every file under ``path``, as Lambda counts the unzipped size."""
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def check_unzipped_size(layer_dir: Path, function_dirs: Iterable[Path]) -> int:
    """Return the largest function + layer size; raise PackagingError over Lambda's limit."""
    function_sizes = [directory_size(path) for path in function_dirs if path.is_dir()]
    total = directory_size(layer_dir) + max(function_sizes, default=0)
    if total > UNZIPPED_LIMIT_BYTES:
        raise PackagingError(
            f"the layer plus the largest function unzip to {total / 1e6:.1f} MB, over "
            f"Lambda's {UNZIPPED_LIMIT_BYTES / 1e6:.0f} MB; trim layers/common/requirements.txt"
        )
    return total


def _ignore_library_extras(directory: str, names: list[str]) -> set[str]:
    ignored = set(shutil.ignore_patterns(*SOURCE_EXCLUDES)(directory, names))
    if Path(directory).resolve() == LIBRARY_DIR.resolve():
        ignored.update(set(NOT_SHIPPED) & set(names))  # only the top-level packages
    return ignored


def copy_library(target: Path) -> None:
    """Copy ``ragline`` into ``target/ragline``, without the packages no Lambda runs and
    caches."""
    shutil.copytree(LIBRARY_DIR, target / "ragline", ignore=_ignore_library_extras)


def builds_runtime_bytecode() -> bool:
    """Whether this interpreter's bytecode is the runtime's (same major.minor version)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON_VERSION


def compile_bytecode(target: Path) -> bool:
    """Compile every module under ``target`` for the runtime; False if this interpreter
    is not the runtime's version (then the layer ships sources only, as before).

    Unchecked-hash pycs: the asset zip does not keep meaningful timestamps, and the
    runtime never recompiles on a read-only ``/opt``, so the source check would only
    cost a stat per import.
    """
    if not builds_runtime_bytecode():
        return False
    # A dependency may ship a .py that is not Python for this version (a template, a
    # vendored backport): it stays source-only, which is what every module was before.
    compileall.compile_dir(
        target,
        quiet=2,
        workers=0,
        invalidation_mode=PycInvalidationMode.UNCHECKED_HASH,
    )
    return True


def pip_command(architecture: str, target: Path) -> list[str]:
    """The pip invocation that installs the layer's requirements for Lambda."""
    platforms = [arg for tag in PIP_PLATFORMS[architecture] for arg in ("--platform", tag)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--requirement",
        str(REQUIREMENTS),
        *platforms,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-compile",
        "--target",
        str(target),
    ]


@jsii.implements(ILocalBundling)
class PipLayerBundler:
    """Builds the layer directory (``python/...``) with pip on the build machine."""

    def __init__(self, architecture: str) -> None:
        self.architecture = architecture

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        """Install the requirements and the library into ``output_dir/python``."""
        target = Path(output_dir) / "python"
        completed = subprocess.run(
            pip_command(self.architecture, target), capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise PackagingError(f"pip could not build the ragline layer:\n{completed.stderr}")
        for name in RUNTIME_PROVIDED:
            shutil.rmtree(target / name, ignore_errors=True)
            for info in target.glob(f"{name}-*.dist-info"):
                shutil.rmtree(info)
        shutil.rmtree(target / "bin", ignore_errors=True)
        copy_library(target)
        compile_bytecode(target)
        check_unzipped_size(Path(output_dir), FUNCTIONS_DIR.iterdir())
        return True


def layer_fingerprint(architecture: str) -> str:
    """A hash of everything the bundled layer depends on, so unchanged layers are reused."""
    # Whether the build can compile the runtime's bytecode changes the asset too.
    bytecode = builds_runtime_bytecode()
    digest = hashlib.sha256(f"{architecture}|{PYTHON_VERSION}|{bytecode}|".encode())
    digest.update(REQUIREMENTS.read_bytes())
    for path in sorted(LIBRARY_DIR.rglob("*")):
        relative = path.relative_to(LIBRARY_DIR)
        if not path.is_file() or relative.parts[0] in NOT_SHIPPED or _is_excluded(relative):
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _is_excluded(relative: Path) -> bool:
    return any(part == "__pycache__" or part.endswith(".egg-info") for part in relative.parts) or (
        relative.suffix == ".pyc"
    )


def layer_code(settings: DeploymentSettings) -> lambda_.Code:
    """The layer's code: bundled with pip, or (``bundling=false``) the plain sources.

    The unbundled layer lacks the dependencies: it is for fast synthesis in tests, not
    for deployment.
    """
    if not settings.bundling:
        return lambda_.Code.from_asset(str(LAYER_DIR), exclude=LAYER_SOURCE_EXCLUDES)
    return lambda_.Code.from_asset(
        str(LAYER_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=layer_fingerprint(settings.architecture),
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds or raises.
            image=DockerImage.from_registry("local-bundling-only"),
            # jsii hands the options over as one struct, not as the keywords the
            # generated ILocalBundling signature spells out.
            local=cast(ILocalBundling, PipLayerBundler(settings.architecture)),
        ),
    )


def function_code(name: str) -> lambda_.Code:
    """A handler directory as a plain asset."""
    path = FUNCTIONS_DIR / name
    return lambda_.Code.from_asset(str(path), exclude=[f"**/{p}" for p in SOURCE_EXCLUDES])


class CommonLayer(Construct):
    """The `ragline` library and its dependencies as one Lambda layer."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploymentSettings):
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=layer_code(settings),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURES[settings.architecture]],
            description="ragline library and its dependencies (Lambda platform wheels)",
        )
