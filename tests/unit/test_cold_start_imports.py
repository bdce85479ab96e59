"""Cold start: with the embedded defaults, no model SDK is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import importlib.util, json, sys
import ragline.llm, ragline.embeddings, ragline.rerankers
spec = importlib.util.spec_from_file_location("handler", "functions/query/handler.py")
handler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler)
print(json.dumps(sorted(sys.modules)))
"""
PROVIDER_MODULES = {
    "openai",
    "ragline.llm.openai",
    "ragline.llm.sagemaker",
    "ragline.llm.bedrock",
    "ragline.providers.clients",
    "ragline.embeddings.openai",
    "ragline.embeddings.bedrock",
    "ragline.embeddings.sagemaker",
    "ragline.embeddings.minilm_onnx",
    "onnxruntime",
    "ragline.rerankers.bedrock",
    "ragline.rerankers.http",
    "ragline.rerankers.sagemaker",
    "boto3",
    "urllib.request",
}


def test_the_query_handler_with_extractive_imports_no_model_sdk() -> None:
    # GIVEN the extractive model, hash embeddings and no reranker (the defaults)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "OPENAI_"))}
    environment.update(
        RAGLINE_LLM="extractive",
        RAGLINE_EMBEDDINGS="hash",
        # never contacted at import: the store connects on first use
        RAGLINE_DATABASE_URL="postgresql://ragline@127.0.0.1:9/unused",
    )
    # WHEN a fresh interpreter imports the packages and the query handler
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    imported = set(json.loads(probe.stdout.strip().splitlines()[-1]))
    # THEN the answerer is built, but no provider module or SDK was loaded
    assert "ragline.answer" in imported and "ragline.llm.extractive" in imported
    assert "ragline.rerankers" in imported
    assert imported & PROVIDER_MODULES == set()
    assert not any(name.startswith("openai.") for name in imported)


# What the query function needs only for a request, not to start: loaded on first use.
ON_FIRST_USE = {
    "numpy",  # the first embedding
    "psycopg",  # the first statement (the SQL modules compose with it)
    "pgvector",
    "ragline.store.documents",
    "ragline.store.search",
    "ragline.store.query_log",
    "aws_lambda_powertools.event_handler.openapi.models",  # the first /swagger request
}


@pytest.mark.parametrize("entry", ["handler", "streaming"])
def test_the_query_functions_start_without_what_only_a_request_needs(entry: str) -> None:
    # GIVEN the defaults (hash embeddings, the extractive model, psycopg)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "OPENAI_"))}
    environment["RAGLINE_DATABASE_URL"] = "postgresql://ragline@127.0.0.1:9/unused"
    probe = PROBE
    if entry == "streaming":  # the streaming function: the runtime loop loads the handler
        probe = PROBE.replace(
            "spec.loader.exec_module(handler)",
            "spec.loader.exec_module(handler); import ragline.streaming_runtime",
        )
    # WHEN a fresh interpreter imports the query handler
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    imported = set(json.loads(completed.stdout.strip().splitlines()[-1]))
    # THEN the answerer, the store and the ledger are built, without numpy, psycopg, the
    # SQL modules or the OpenAPI models
    assert {"ragline.answer", "ragline.store.facade", "ragline.ledger"} <= imported
    assert imported & ON_FIRST_USE == set()
    assert not any(name.startswith(("numpy.", "psycopg.", "pgvector.")) for name in imported)


def test_tracing_is_off_outside_lambda_and_loads_no_xray() -> None:
    # GIVEN no Lambda environment and no RAGLINE_TRACING
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAGLINE_", "OPENAI_", "AWS_LAMBDA_"))
    }
    environment["RAGLINE_DATABASE_URL"] = "postgresql://ragline@127.0.0.1:9/unused"
    # WHEN a fresh interpreter imports the query handler
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = set(json.loads(probe.stdout.strip().splitlines()[-1]))
    # THEN the X-Ray SDK was never imported
    assert not any(name.startswith("aws_xray_sdk") for name in imported)


DOCUMENT_PROBE = """
import importlib.util, json, sys
import ragline, ragline.documents, ragline.ingest
for name in ("ingest", "query"):
    spec = importlib.util.spec_from_file_location(name, f"functions/{name}/handler.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
from ragline.documents import parse_document
parse_document("notes.md", b"# Notes\\n\\nPlain text.")
parse_document("rows.csv", b"a,b\\n1,2\\n")
before = sorted(sys.modules)
with open(sys.argv[1], "rb") as word:
    parse_document("hello.docx", word.read())
print(json.dumps([before, sorted(sys.modules)]))
"""
# The Office parsers and what they pull in (lxml, Pillow, XlsxWriter, et_xmlfile, defusedxml).
PARSER_PACKAGES = {
    "docx",
    "pptx",
    "openpyxl",
    "lxml",
    "PIL",
    "xlsxwriter",
    "et_xmlfile",
    "defusedxml",
    # the PDF parser (PDFium)
    "pypdfium2",
    "pypdfium2_raw",
}


def _packages(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_no_office_parser_is_imported_until_a_file_of_its_format_is_read(tmp_path: Path) -> None:
    # GIVEN a Word file, and a fresh interpreter that imports ragline and both document
    # handlers, reads a Markdown and a CSV document, then the Word file
    import docx

    word = tmp_path / "hello.docx"
    document = docx.Document()
    document.add_paragraph("Hello")
    document.save(str(word))
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "OPENAI_"))}
    environment.update(
        RAGLINE_EMBEDDINGS="hash",
        RAGLINE_LLM="extractive",
        RAGLINE_DATABASE_URL="postgresql://ragline@127.0.0.1:9/unused",
    )
    probe = subprocess.run(
        [sys.executable, "-c", DOCUMENT_PROBE, str(word)], cwd=ROOT, env=environment,
        capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    before, after = json.loads(probe.stdout.strip().splitlines()[-1])
    # THEN no Office parser (nor what they pull in) was imported
    assert _packages(before) & PARSER_PACKAGES == set()
    # AND reading a Word file imports the Word parser only, not PowerPoint's or Excel's
    assert {"docx", "lxml"} <= _packages(after)
    assert _packages(after) & {"pptx", "openpyxl", "PIL", "xlsxwriter", "pypdfium2"} == set()


METER_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("handler", "functions/meter/handler.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(sorted(sys.modules)))
"""
# What the meter, a 128 MB function run every few minutes, has no use for.
NOT_FOR_THE_METER = {"psycopg", "numpy", "ragline.store", "ragline.documents", "ragline.llm"}


def test_the_meter_handler_loads_neither_the_store_nor_the_models() -> None:
    # GIVEN Lambda's region variables and nothing of ragline's
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "OPENAI_"))}
    environment.update(AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    # WHEN a fresh interpreter imports the meter's handler
    probe = subprocess.run(
        [sys.executable, "-c", METER_PROBE], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    imported = set(json.loads(probe.stdout.strip().splitlines()[-1]))
    # THEN it has its SageMaker client, and no database driver, store, array library or model
    assert {"ragline.metering", "boto3"} <= imported
    assert imported & NOT_FOR_THE_METER == set()


AUTHORIZER_PROBE = METER_PROBE.replace("functions/meter/", "functions/authorizer/")
# What the authorizer, on the path of every uncached request, has no use for: it reads
# one row of the keys table.
NOT_FOR_THE_AUTHORIZER = {
    "numpy", "openai", "tiktoken", "ragline.answer", "ragline.ingest", "ragline.documents",
    "ragline.embeddings", "ragline.llm", "ragline.retrieval", "ragline.rerankers",
    "ragline.ledger", "ragline.catalog",
}  # fmt: skip


def test_the_authorizer_loads_the_store_and_nothing_of_answers_or_models() -> None:
    # GIVEN Lambda's region variables and nothing of ragline's
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "OPENAI_"))}
    environment.update(AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    # WHEN a fresh interpreter imports the authorizer's handler
    probe = subprocess.run(
        [sys.executable, "-c", AUTHORIZER_PROBE], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    imported = set(json.loads(probe.stdout.strip().splitlines()[-1]))
    # THEN it has the tenancy use case and the store, and no model, loader or array library
    assert {"ragline.tenancy", "ragline.store"} <= imported
    assert imported & NOT_FOR_THE_AUTHORIZER == set()
