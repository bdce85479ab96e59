"""minilm-onnx: MiniLM int8 on ONNX Runtime agrees with torch MiniLM, and loads without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ragline.config import Settings
from ragline.embeddings import create_embedder
from ragline.embeddings.minilm_onnx import (
    MANIFEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    MiniLMOnnxEmbedder,
    default_model_dir,
)
from ragline.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = [
    "To read a file line by line, iterate over the file object returned by open().",
    "The secrets module generates cryptographically strong random numbers for tokens.",
    "tomllib parses TOML files such as pyproject.toml; open them in binary mode.",
    "git rebase reapplies commits on top of another base tip.",
    "Refunds for flights over 6 hours are paid within 30 days of the request.",
]
QUESTION = "How can I make a hard-to-guess token for a password reset link?"
# A fresh interpreter builds the default local embedder and embeds a question.
PROBE = """
import json, sys
from ragline.config import Settings
from ragline.embeddings import create_embedder
embedder = create_embedder("minilm-onnx", Settings())
vector = embedder.embed_query("How do I read a file?").vectors[0]
print(json.dumps({"dimensions": len(vector), "modules": sorted(sys.modules)}))
"""


def test_a_missing_export_is_a_clear_error_naming_the_command(tmp_path: Path) -> None:
    # GIVEN a directory without an exported model
    # WHEN minilm-onnx is built on it
    with pytest.raises(ConfigurationError) as raised:
        create_embedder(f"minilm-onnx:{tmp_path}", Settings())
    # THEN the error says what is missing, where, and the command that exports it there
    message = str(raised.value)
    assert str(tmp_path) in message and MODEL_FILE in message
    assert f"python -m ragline.embeddings.export_onnx --out {tmp_path}" in message


def test_a_thread_count_below_one_is_refused() -> None:
    # GIVEN RAGLINE_ONNX_THREADS=0 / WHEN settings are read / THEN the variable is named
    with pytest.raises(ConfigurationError, match="RAGLINE_ONNX_THREADS"):
        Settings.from_env({"RAGLINE_ONNX_THREADS": "0"})


def test_building_and_embedding_imports_no_torch() -> None:
    # GIVEN the export `make setup` makes
    assert (default_model_dir() / MODEL_FILE).is_file(), "run `make setup` (it exports)"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    # WHEN a fresh interpreter builds minilm-onnx and embeds a question
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    # THEN it has a 384-dimensional vector and never loaded torch or transformers
    assert result["dimensions"] == 384
    assert "onnxruntime" in result["modules"]
    heavy = {"torch", "transformers", "sentence_transformers"}
    assert not {name.partition(".")[0] for name in result["modules"]} & heavy


def test_the_thread_setting_reaches_the_session() -> None:
    # GIVEN RAGLINE_ONNX_THREADS=1
    settings = Settings.from_env({"RAGLINE_ONNX_THREADS": "1"})
    # WHEN the embedder is built from the settings
    embedder = create_embedder("minilm-onnx", settings)
    # THEN ONNX Runtime computes with one thread
    assert isinstance(embedder, MiniLMOnnxEmbedder)
    assert embedder._session.get_session_options().intra_op_num_threads == 1


@pytest.mark.slow
def test_an_export_agrees_with_the_torch_model(tmp_path: Path) -> None:
    # GIVEN MiniLM exported afresh to int8 ONNX, and the torch model it came from
    from ragline.embeddings.export_onnx import main as export
    from ragline.embeddings.minilm import MiniLMEmbedder

    assert export(["--out", str(tmp_path)]) == 0
    assert {MODEL_FILE, TOKENIZER_FILE, MANIFEST} <= {p.name for p in tmp_path.iterdir()}
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    onnx_model = create_embedder(f"minilm-onnx:{tmp_path}", Settings())
    torch_model = MiniLMEmbedder()
    # WHEN both embed the same sentences (of different lengths, in one padded batch)
    # and a question
    onnx_result = onnx_model.embed_documents(SENTENCES)
    torch_result = torch_model.embed_documents(SENTENCES)
    cosines = (onnx_result.vectors * torch_result.vectors).sum(axis=1)
    # THEN the vectors point the same way, the word pieces read are the same, the model's
    # own limit is kept, and the question finds the same passage first
    assert manifest["max_seq_length"] == torch_model._model.max_seq_length == 256
    assert onnx_model.max_input_tokens == torch_model.max_input_tokens
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, cosines
    assert onnx_result.tokens == torch_result.tokens
    best = [
        int(np.argmax(result.vectors @ model.embed_query(QUESTION).vectors[0]))
        for model, result in ((onnx_model, onnx_result), (torch_model, torch_result))
    ]
    assert best[0] == best[1] == 1
    # AND a text longer than the model reads is cut at its 256 word pieces, as torch cuts it
    long_text = "word " * 1000
    assert onnx_model.embed_documents([long_text]).tokens == 256
    long_cosine = float(
        onnx_model.embed_query(long_text).vectors[0] @ torch_model.embed_query(long_text).vectors[0]
    )
    assert long_cosine >= 0.98
