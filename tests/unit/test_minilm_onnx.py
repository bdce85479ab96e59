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


def test_the_thread_setting_is_the_number_of_single_threaded_sessions() -> None:
    # GIVEN RAGLINE_ONNX_THREADS=3
    settings = Settings.from_env({"RAGLINE_ONNX_THREADS": "3"})
    # WHEN the embedder is built from the settings and embeds a question
    embedder = create_embedder("minilm-onnx", settings)
    assert isinstance(embedder, MiniLMOnnxEmbedder)
    embedder.embed_query("How do I read a file?")
    # THEN one session answered it; a batch of five then runs on three sessions
    assert len(embedder._sessions) == 1
    embedder.embed_documents([f"text number {n} " * (n + 1) for n in range(5)])
    assert len(embedder._sessions) == 3
    # AND each of them computes on one thread
    options = [session.get_session_options() for session in embedder._sessions]
    assert [o.intra_op_num_threads for o in options] == [1, 1, 1]


def test_a_texts_vector_does_not_depend_on_the_texts_batched_with_it() -> None:
    # GIVEN sentences of different lengths, embedded together (on two sessions)
    embedder = MiniLMOnnxEmbedder(threads=2)
    together = embedder.embed_documents(SENTENCES)
    # WHEN each is embedded alone, and the batch again in reverse order
    alone = np.vstack([embedder.embed_documents([text]).vectors for text in SENTENCES])
    reversed_batch = embedder.embed_documents(SENTENCES[::-1]).vectors[::-1]
    # THEN every text has the same vector in each case, in the order it was given
    assert np.array_equal(together.vectors, alone)
    assert np.array_equal(together.vectors, reversed_batch)
    assert together.tokens == sum(embedder.embed_documents([t]).tokens for t in SENTENCES)


@pytest.mark.slow
def test_an_export_agrees_with_the_torch_model(tmp_path: Path) -> None:
    # GIVEN MiniLM exported afresh to int8 ONNX, and the torch model it came from
    from ragline.embeddings.export_onnx import main as export
    from ragline.embeddings.minilm import MiniLMEmbedder

    assert export(["--out", str(tmp_path)]) == 0
    assert {MODEL_FILE, TOKENIZER_FILE, MANIFEST} <= {p.name for p in tmp_path.iterdir()}
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    # AND each of the six layers' attention is one fused int8 node, not the traced ops
    import onnx

    ops = [node.op_type for node in onnx.load(str(tmp_path / MODEL_FILE)).graph.node]
    assert manifest["format"] == 2 and manifest["fused"]["Attention"] == 6
    assert ops.count("QAttention") == 6 and "Softmax" not in ops and "Where" not in ops
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


def test_an_export_of_an_older_format_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a directory holding an export from before formats were recorded
    import ragline.embeddings.export_onnx as export_onnx

    (tmp_path / MODEL_FILE).write_bytes(b"onnx")
    (tmp_path / MANIFEST).write_text(json.dumps({"max_seq_length": 256, "dimensions": 384}))
    exported: list[Path] = []

    def record(out: Path) -> dict[str, object]:
        exported.append(out)
        return {}

    monkeypatch.setattr(export_onnx, "export", record)
    # WHEN `make setup` runs the export command over it
    assert export_onnx.export_format(tmp_path) == 1
    assert export_onnx.main(["--out", str(tmp_path)]) == 0
    # THEN it exports again, saying why
    assert exported == [tmp_path]
    assert "holds export format 1; exporting format 2" in capsys.readouterr().out
    # AND an export of the current format is left alone
    (tmp_path / MANIFEST).write_text(json.dumps({"format": export_onnx.EXPORT_FORMAT}))
    assert export_onnx.main(["--out", str(tmp_path)]) == 0
    assert exported == [tmp_path]
