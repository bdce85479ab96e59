"""Cold-start import time of each handler over the built layer, with and without bytecode.

Builds the layer as `cdk synth` does (stacks/packaging.py: pip for the Lambda platform,
then the runtime's bytecode), makes a second copy without any `__pycache__`, makes both
read-only as Lambda's `/opt` is, and imports every handler in fresh interpreters with
`PYTHONDONTWRITEBYTECODE=1`: the copy without bytecode compiles every module on every
import, as each cold start did before the layer shipped `.pyc`. Prints the median wall
time of `import handler` and the `-X importtime` total (the sum of every module's own
time). boto3 comes from this environment, precompiled, as the runtime provides it.
Figures, not a test: compare within one run.

    python bench/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stacks.packaging import FUNCTIONS_DIR, PipLayerBundler, builds_runtime_bytecode  # noqa: E402

# Enough for every handler's import-time settings check; nothing is called.
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "ragline",
    "PYTHONDONTWRITEBYTECODE": "1",
}
PROBE = "import time, sys; t = time.perf_counter(); import handler; print(time.perf_counter() - t)"


def _build(workdir: Path) -> tuple[Path, Path]:
    """The built layer (with bytecode) and a copy without it, both read-only."""
    with_bytecode = workdir / "with-bytecode"
    PipLayerBundler("x86_64").try_bundle(str(with_bytecode), None)  # type: ignore[arg-type]
    without = workdir / "without-bytecode"
    shutil.copytree(with_bytecode, without)
    for cache in list(without.rglob("__pycache__")):
        shutil.rmtree(cache)
    functions = workdir / "functions"
    shutil.copytree(FUNCTIONS_DIR, functions, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (with_bytecode, without, functions):
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
    return with_bytecode, without


def _import_once(layer: Path, function_dir: Path) -> tuple[float, float]:
    """Seconds of wall time for `import handler` and the -X importtime total."""
    environment = {
        **os.environ,
        **ENVIRONMENT,
        # The layer first, as Lambda puts /opt/python before the runtime's packages.
        "PYTHONPATH": os.pathsep.join([str(function_dir), str(layer / "python")]),
    }
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        env=environment,
        cwd=function_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{function_dir.name}: {completed.stderr[-2000:]}")
    own_microseconds = sum(
        int(line.split("|")[0].split(":")[1])
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    )
    return float(completed.stdout.strip().splitlines()[-1]), own_microseconds / 1e6


def _ragline_location(layer: Path) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", "import ragline; print(ragline.__file__)"],
        env={**os.environ, **ENVIRONMENT, "PYTHONPATH": str(layer / "python")},
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per figure")
    arguments = parser.parse_args()
    if not builds_runtime_bytecode():
        sys.exit("this interpreter is not the runtime's version: the layer has no bytecode")
    workdir = Path(tempfile.mkdtemp(prefix="ragline-cold-start-"))
    try:
        with_bytecode, without = _build(workdir)
        location = _ragline_location(with_bytecode)
        assert location.startswith(str(with_bytecode)), location  # not the editable install
        print(f"python {sys.version.split()[0]}, {arguments.runs} fresh interpreters each")
        print(f"{'handler':<10} {'layer':<18} {'import (ms)':>12} {'importtime (ms)':>16}")
        for function_dir in sorted((workdir / "functions").iterdir()):
            for label, layer in (("with bytecode", with_bytecode), ("without bytecode", without)):
                runs = [_import_once(layer, function_dir) for _ in range(arguments.runs)]
                wall = statistics.median(run[0] for run in runs) * 1000
                total = statistics.median(run[1] for run in runs) * 1000
                print(f"{function_dir.name:<10} {label:<18} {wall:>12.0f} {total:>16.0f}")
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(workdir)], check=True)
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
