"""all-MiniLM-L6-v2 with int8 weights, run by ONNX Runtime: no torch at run time.

The model is exported once from the bundled one (``python -m
ragline.embeddings.export_onnx``, which ``make setup`` runs) into a directory holding
``model.onnx``, ``tokenizer.json`` and ``manifest.json``. ``minilm-onnx`` reads it from
``~/.cache/ragline/minilm-onnx``; ``minilm-onnx:/some/dir`` reads another.

It reads text as ``minilm`` does (the same tokenizer, cut at the model's 256 word
pieces, the token vectors averaged over the attention mask), so its vectors agree with
``minilm``'s to a cosine of about 0.99; it records its own name with a collection all the
same, so the two never share one (bench/onnx_embedder.py measures speed and agreement).
Only ``onnxruntime``, ``tokenizers`` and numpy are imported (the ``onnx`` extra), and
only when this embedder is built.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragline.embeddings.base import Embedder, EmbeddingResult
from ragline.errors import ConfigurationError, ModelError

if TYPE_CHECKING:
    from ragline.config import Settings

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST = "manifest.json"
EXPORT_COMMAND = "python -m ragline.embeddings.export_onnx"
# Texts per forward pass, taken in order of length so each pass pads little (as
# sentence-transformers does for minilm).
ENCODE_BATCH_SIZE = 32


def default_model_dir() -> Path:
    """Where the export goes and ``minilm-onnx`` looks: one per user, shared by data dirs."""
    return Path.home() / ".cache" / "ragline" / "minilm-onnx"


class MiniLMOnnxEmbedder(Embedder):
    """384-dimensional sentence embeddings from all-MiniLM-L6-v2, int8, on ONNX Runtime."""

    name = "minilm-onnx"
    # As minilm: the model reads 256 word pieces; room for the heading path of a chunk.
    max_input_tokens = 200

    def __init__(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        directory = model_dir or default_model_dir()
        files = (MODEL_FILE, TOKENIZER_FILE, MANIFEST)
        missing = [name for name in files if not (directory / name).is_file()]
        if missing:
            raise ConfigurationError(
                f"RAGLINE_EMBEDDINGS=minilm-onnx: no exported model in {directory} "
                f"({', '.join(missing)} missing); run `{EXPORT_COMMAND}"
                + ("" if model_dir is None else f" --out {directory}")
                + "` to export it (needs the 'minilm' extra once), or `make setup`"
            )
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError(
                "RAGLINE_EMBEDDINGS=minilm-onnx needs the 'onnx' extra: pip install 'ragline[onnx]'"
            ) from exc
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        super().__init__(int(manifest["dimensions"]))
        self.max_seq_length = int(manifest["max_seq_length"])
        self._tokenizer: Any = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.no_padding()  # each batch is padded to its longest text below
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        # Threads that wait for work sleep rather than spin: on a machine shared with
        # other work (a laptop, a busy CI runner) spinning steals the cores it waits for.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session: Any = onnxruntime.InferenceSession(
            str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> MiniLMOnnxEmbedder:
        """``minilm-onnx`` (the default export) or ``minilm-onnx:<directory>``."""
        return cls(Path(model).expanduser() if model else None, threads=settings.onnx_threads)

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        vectors = np.zeros((len(texts), self.dimensions), np.float32)
        # Longest first, so one batch's texts are of about one length and pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        tokens = 0
        for start in range(0, len(order), ENCODE_BATCH_SIZE):
            indices = order[start : start + ENCODE_BATCH_SIZE]
            encodings = self._tokenizer.encode_batch([texts[i] for i in indices])
            width = max(len(e.ids) for e in encodings)
            feed = {
                name: np.zeros((len(indices), width), np.int64)
                for name in ("input_ids", "attention_mask", "token_type_ids")
            }
            for row, encoding in enumerate(encodings):
                size = len(encoding.ids)
                feed["input_ids"][row, :size] = encoding.ids
                feed["attention_mask"][row, :size] = encoding.attention_mask
                feed["token_type_ids"][row, :size] = encoding.type_ids
                tokens += size
            try:
                (pooled,) = self._session.run(
                    None, {k: v for k, v in feed.items() if k in self._inputs}
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelError(f"minilm-onnx failed: {exc}") from exc
            vectors[indices] = pooled
        return EmbeddingResult(vectors, tokens)
