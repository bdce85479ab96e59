"""The one test that runs the real layer bundler: pip for the Lambda platform, no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack

from stacks import packaging
from stacks.packaging import (
    UNZIPPED_LIMIT_BYTES,
    CommonLayer,
    compile_bytecode,
    copy_library,
    directory_size,
)
from stacks.settings import DeploymentSettings


def _wheel_tags(site: Path, distribution: str) -> list[str]:
    (wheel,) = site.glob(f"{distribution}-*.dist-info/WHEEL")
    return [
        line.split(":", 1)[1].strip()
        for line in wheel.read_text().splitlines()
        if line.startswith("Tag:")
    ]


@pytest.mark.slow
def test_layer_asset_holds_lambda_platform_binaries_and_no_local_stack(tmp_path: Path) -> None:
    # GIVEN the layer with bundling on (the default), for x86_64 Lambda
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Bundling")
    CommonLayer(stack, "CommonLayer", settings=DeploymentSettings(bundling=True))
    # WHEN the app is synthesized (pip runs on this machine)
    app.synth()
    (asset,) = [p for p in tmp_path.glob("asset.*") if (p / "python").is_dir()]
    site = asset / "python"
    # THEN the compiled extensions are CPython 3.11 manylinux x86_64 builds
    assert list((site / "psycopg_binary").glob("_psycopg.cpython-311-x86_64-linux-gnu.so"))
    for distribution in ("psycopg_binary", "numpy", "pydantic_core"):
        tags = _wheel_tags(site, distribution)
        assert tags, distribution
        assert all(
            tag.startswith("cp311-cp311-manylinux") and tag.endswith("x86_64") for tag in tags
        ), (distribution, tags)
    # AND the PDF loader's parser ships with PDFium built for x86_64 Linux
    pdfium_tags = _wheel_tags(site, "pypdfium2")
    assert pdfium_tags and all("manylinux" in t and t.endswith("x86_64") for t in pdfium_tags)
    assert list((site / "pypdfium2_raw").glob("libpdfium*.so"))
    # AND the library is there with its SQL migrations, without the local stack
    assert (site / "ragline" / "config.py").is_file()
    assert list((site / "ragline" / "store" / "migrations").glob("*.sql"))
    assert not (site / "ragline" / "dev").exists()
    assert not (site / "ragline" / "evaluation").exists()
    # AND it ships the runtime's bytecode (/opt is read-only: without it every cold start
    # compiles), hash-based and never checked against the zip's meaningless timestamps
    for module in ("config", "answer/answerer", "store/facade"):
        source = site / "ragline" / f"{module}.py"
        (pyc,) = (source.parent / "__pycache__").glob(f"{source.stem}.cpython-311.pyc")
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, (pyc, flags)  # hash-based, check_source off
    assert list((site / "pydantic" / "__pycache__").glob("*.cpython-311.pyc"))
    assert not [p for p in site.rglob("*.pyc") if "cpython-311" not in p.name]
    # AND what the Lambda runtime provides is left out, and it all fits Lambda's limit
    assert not (site / "botocore").exists() and not (site / "boto3").exists()
    assert directory_size(asset) < UNZIPPED_LIMIT_BYTES


def test_the_library_copy_leaves_out_the_packages_no_lambda_runs(tmp_path: Path) -> None:
    # WHEN the library is copied as the bundler copies it
    copy_library(tmp_path)
    library = tmp_path / "ragline"
    # THEN the use cases the handlers call are there; the local stack and the evaluation
    # (the ragline command's) are not
    assert (library / "answer" / "answerer.py").is_file()
    assert (library / "ingest" / "pipeline.py").is_file()
    assert not (library / "dev").exists() and not (library / "evaluation").exists()


def test_bytecode_is_compiled_only_by_the_runtimes_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a copied library and a runtime whose Python is not this interpreter's
    copy_library(tmp_path)
    monkeypatch.setattr(packaging, "PYTHON_VERSION", "3.99")
    # WHEN the bundler compiles its bytecode
    compiled = compile_bytecode(tmp_path)
    # THEN it ships none (the runtime could not load it) rather than the wrong version's
    assert not compiled
    assert not list(tmp_path.rglob("*.pyc"))
