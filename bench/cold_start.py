"""Cold-start import time of each handler over the built layer, with and without bytecode.

Builds the layer as `cdk synth` does (stacks/packaging.py: pip for the Lambda platform,
then the runtime's bytecode), makes a second copy without any `__pycache__`, makes both
read-only as Lambda's `/opt` is, and imports every handler in fresh interpreters with
`PYTHONDONTWRITEBYTECODE=1`: the copy without bytecode compiles every module on every
import, as each cold start did before the layer shipped `.pyc`. Prints the median wall
time of `import handler`, the `-X importtime` total (the sum of every module's own
time), and what the modules a handler loads on first use (numpy, psycopg, the SQL
modules, the OpenAPI models) then add: the part of a cold start moved to the first
request. ``query-stream`` is the streaming function's entry: the runtime loop
(ragline.streaming_runtime) loading ``handler.stream_handler``. boto3 comes from this
environment, precompiled, as the runtime provides it. Figures, not a test: compare
within one run.

``--against REF`` measures the handlers of git revision REF too, interleaved with this
tree's, over the same dependencies (its library and functions replace this tree's in a
copy of the built layer; the two must have the same requirements.txt).

    python bench/cold_start.py [--runs 5] [--against main] [--with-bytecode-only]
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

from stacks.packaging import (  # noqa: E402
    FUNCTIONS_DIR,
    PipLayerBundler,
    builds_runtime_bytecode,
    compile_bytecode,
)

# Enough for every handler's import-time settings check; nothing is called.
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "ragline",
    "PYTHONDONTWRITEBYTECODE": "1",
}
PROBE = "import time, sys; t = time.perf_counter(); import handler; print(time.perf_counter() - t)"
# The streaming function: the runtime loop's module, then the handler it names.
STREAM_PROBE = (
    "import time, sys; t = time.perf_counter(); import ragline.streaming_runtime as r; "
    "r.load_handler('handler.stream_handler'); print(time.perf_counter() - t)"
)
# What a handler may leave to its first request; timed after the import.
FIRST_USE = (
    "numpy",
    "psycopg",
    "pgvector.psycopg",
    "ragline.store.documents",
    "ragline.store.search",
    "ragline.store.query_log",
    "ragline.store.tenants",
    "aws_lambda_powertools.event_handler.openapi.models",
)
MARKER = "-- first use --"
FIRST_USE_PROBE = (
    f"print({MARKER!r}, file=sys.stderr, flush=True); import importlib; "
    "t = time.perf_counter(); "
    f"[importlib.import_module(m) for m in {FIRST_USE!r}]; print(time.perf_counter() - t)"
)


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
    return with_bytecode, without


def _baseline(workdir: Path, layer: Path, ref: str) -> tuple[Path, Path]:
    """REF's layer (its library over ``layer``'s dependencies, with bytecode) and functions."""
    tree = workdir / "baseline-tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    requirements = "layers/common/requirements.txt"
    if (tree / requirements).read_text() != (ROOT / requirements).read_text():
        sys.exit(f"{ref} has other requirements: build its layer with its own bench")
    baseline = workdir / "baseline-layer"
    shutil.copytree(layer, baseline)
    shutil.rmtree(baseline / "python" / "ragline")
    source = tree / "layers" / "common" / "python" / "ragline"
    shutil.copytree(
        source,
        baseline / "python" / "ragline",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dev", "evaluation"),
    )
    compile_bytecode(baseline / "python" / "ragline")
    return baseline, tree / "functions"


def _import_once(layer: Path, function_dir: Path, probe: str) -> tuple[float, float, float]:
    """Seconds of wall time for the import, the -X importtime total, and the first-use
    modules' import after it."""
    environment = {
        **os.environ,
        **ENVIRONMENT,
        # The layer first, as Lambda puts /opt/python before the runtime's packages.
        "PYTHONPATH": os.pathsep.join([str(function_dir), str(layer / "python")]),
    }
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"{probe}; {FIRST_USE_PROBE}"],
        env=environment,
        cwd=function_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{function_dir.name}: {completed.stderr[-2000:]}")
    stamps = completed.stdout.strip().splitlines()
    imported, first_use = float(stamps[-2]), float(stamps[-1])
    handler_lines = completed.stderr.split(MARKER)[0].splitlines()
    own_microseconds = sum(
        int(line.split("|")[0].split(":")[1])
        for line in handler_lines
        if line.startswith("import time:") and "self [us]" not in line
    )
    return imported, own_microseconds / 1e6, first_use


def _entries(functions: Path) -> list[tuple[str, Path, str]]:
    """(name, function directory, probe) for every handler, and the streaming entry."""
    entries = []
    for function_dir in sorted(functions.iterdir()):
        entries.append((function_dir.name, function_dir, PROBE))
        if (function_dir / "streaming-runtime").exists():
            entries.append((f"{function_dir.name}-stream", function_dir, STREAM_PROBE))
    return entries


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
    parser.add_argument("--against", metavar="REF", help="also measure git revision REF")
    parser.add_argument(
        "--with-bytecode-only", action="store_true", help="skip the layer without bytecode"
    )
    arguments = parser.parse_args()
    if not builds_runtime_bytecode():
        sys.exit("this interpreter is not the runtime's version: the layer has no bytecode")
    workdir = Path(tempfile.mkdtemp(prefix="ragline-cold-start-"))
    try:
        with_bytecode, without = _build(workdir)
        location = _ragline_location(with_bytecode)
        assert location.startswith(str(with_bytecode)), location  # not the editable install
        trees: list[tuple[str, Path, Path | None, Path]] = [
            ("this tree", with_bytecode, without, workdir / "functions")
        ]
        if arguments.against:
            layer, functions = _baseline(workdir, with_bytecode, arguments.against)
            trees.insert(0, (arguments.against, layer, None, functions))
        subprocess.run(["chmod", "-R", "a-w", str(workdir)], check=True)  # as /opt is
        print(f"python {sys.version.split()[0]}, {arguments.runs} fresh interpreters each")
        print(
            f"{'handler':<14} {'tree':<10} {'layer':<17} {'import (ms)':>11} "
            f"{'importtime (ms)':>15} {'+ first use (ms)':>16}"
        )
        names = [name for name, _, _ in _entries(workdir / "functions")]
        for name in names:
            layers = [("with bytecode", 0)] + (
                [] if arguments.with_bytecode_only else [("without bytecode", 1)]
            )
            for label, which in layers:
                measured: dict[str, list[tuple[float, float, float]]] = {}
                for _ in range(arguments.runs):  # interleaved: the trees see the same load
                    for tree, layer_with, layer_without, functions in trees:
                        chosen = layer_with if which == 0 else layer_without
                        entry = {n: (d, p) for n, d, p in _entries(functions)}.get(name)
                        if chosen is None or entry is None:
                            continue
                        measured.setdefault(tree, []).append(_import_once(chosen, *entry))
                for tree, runs in measured.items():
                    wall, total, first = (
                        statistics.median(run[i] for run in runs) * 1000 for i in range(3)
                    )
                    print(
                        f"{name:<14} {tree:<10} {label:<17} {wall:>11.0f} {total:>15.0f} "
                        f"{first:>16.0f}"
                    )
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(workdir)], check=True)
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
