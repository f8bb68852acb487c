"""Optional faster embedding: the same model exported to ONNX and run by onnxruntime.

`pip install "qa-zh[fast]"` (onnxruntime and onnx) enables it; nothing here touches the
network. The first use exports the local sentence-transformers model with
`torch.onnx.export` (mean pooling and L2 normalisation inside the graph, exactly as
sentence-transformers does them), optionally quantises its weights to int8 with
onnxruntime's own tools, and caches the result under QA_CACHE (default ~/.cache/qa).

Backends (`Settings.backend`, env QA_BACKEND):
    torch      sentence-transformers on torch, fp32 (the reference)
    onnx       the exported graph, fp32
    onnx-int8  the exported graph with int8 weights (dynamic quantisation)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from .config import resolve_model_path
from .errors import ModelNotFoundError, QAError

BACKENDS = ("torch", "onnx", "onnx-int8")
OPSET = 17


def cache_root() -> Path:
    return Path(os.environ.get("QA_CACHE") or Path.home() / ".cache" / "qa")


def _model_key(path: Path) -> str:
    """Identify a model folder by its files' names, sizes and times (cheap, no hashing of GBs)."""
    parts = [str(path.resolve())]
    for f in sorted(path.iterdir()):
        if f.is_file():
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise QAError(
            f"Unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}."
        )
    return backend


def onnx_file(model: str, backend: str) -> Path:
    """The cached ONNX file for a model and backend, exported (and quantised) on first use."""
    check_backend(backend)
    source = Path(resolve_model_path(model))
    if not source.is_dir():
        raise ModelNotFoundError(
            f"The onnx backends need a local model folder; {model!r} is not one. "
            "Use --backend torch, or give the model's folder."
        )
    folder = cache_root() / "onnx" / f"{source.name}-{_model_key(source)}"
    fp32 = folder / "model.onnx"
    int8 = folder / "model-int8.onnx"
    if not fp32.is_file():
        _export(source, fp32)
    if backend == "onnx-int8" and not int8.is_file():
        _quantise(fp32, int8)
    return int8 if backend == "onnx-int8" else fp32


def _export(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        """The transformer, then sentence-transformers' mean pooling and normalisation."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    model = AutoModel.from_pretrained(str(source), local_files_only=True).eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    ids = torch.ones((2, 16), dtype=torch.long)
    # The tracer warns about shape checks it freezes; with an attention mask they are
    # constant, and the vectors match sentence-transformers (tests/test_scale.py).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "token_type_ids": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, target)


def _quantise(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(f".tmp{os.getpid()}")
    # Weights of the matrix multiplications to int8, per output channel; activations are
    # quantised per batch. Measured: mean cosine 0.997 to the fp32 vectors on CMRC.
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it suggests a pre-processing step that changes nothing here
    try:
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        quiet.setLevel(level)
    os.replace(tmp, target)


class OnnxEmbedder:
    """A sentence-transformers model run by onnxruntime (see the module docstring)."""

    def __init__(
        self, name: str, backend: str = "onnx-int8", batch_size: int = 32, threads: int = 0
    ):
        self.name = name
        self.backend = check_backend(backend)
        self.batch_size = batch_size
        self.threads = threads or (os.cpu_count() or 1)
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                except ImportError:
                    raise ModelNotFoundError(
                        f"This index was embedded with the {self.backend} backend, which needs "
                        "onnxruntime: `pip install 'qa-zh[fast]'`, or rebuild with "
                        "`qa build --backend torch`."
                    ) from None
                from tokenizers import Tokenizer

                path = onnx_file(self.name, self.backend)
                tokenizer = Tokenizer.from_file(
                    str(Path(resolve_model_path(self.name)) / "tokenizer.json")
                )
                tokenizer.enable_truncation(max_length=512)
                tokenizer.no_padding()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                self._dim = int(self._session.get_outputs()[0].shape[1] or 0)
                self._tokenizer = tokenizer
        return self._session, self._tokenizer

    @property
    def dim(self) -> int:
        session, _ = self._load()
        if not self._dim:
            self._dim = int(self.encode(["维"]).shape[1])
        return self._dim

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        session, tokenizer = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = tokenizer.encode_batch(list(texts))
        # Longest first, in batches of similar length: padding is wasted work.
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = None
        for begin in range(0, len(texts), self.batch_size):
            rows = order[begin : begin + self.batch_size]
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                e = encodings[r].ids
                ids[i, : len(e)] = e
                mask[i, : len(e)] = 1
            (vectors,) = session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out
