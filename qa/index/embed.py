"""Turn texts into unit-length vectors. Models load on first use, never at import."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import DEFAULT_MODEL, resolve_model_path
from ..errors import ModelNotFoundError


class Embedder(Protocol):
    """What the index needs from a model: a stable name, a dimension and `encode`."""

    name: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Return float32 vectors of shape (len(texts), dim), each of length 1."""
        ...


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by name or local path, on the CPU."""

    backend = "torch"
    runtime = "torch"  # what computes the vectors (see OnnxEmbedder)
    fidelity = 1.0  # cosine to fp32: it is fp32

    def __init__(self, name: str, batch_size: int = 32):
        self.name = name
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()  # two first questions at once must not load it twice

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            # Never reach for a model hub at run time: everything here works offline.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(resolve_model_path(self.name), device="cpu")
            except OSError as exc:  # not on disk, and nothing is downloaded
                raise ModelNotFoundError(
                    f"The model {self.name!r} could not be loaded ({' '.join(str(exc).split())}). "
                    "Give a local "
                    "sentence-transformers folder with --model PATH or QA_MODEL=PATH."
                ) from None
            return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        return int(model.get_embedding_dimension())

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashEmbedder:
    """Deterministic bag of character uni- and bigrams hashed into `dim` buckets.

    No model, no download: it makes tests fast and exact. Texts that share characters
    get similar vectors, so retrieval still behaves sensibly on tiny corpora.
    """

    name = "hash"
    backend = "numpy"
    runtime = "numpy"
    fidelity = 1.0

    def __init__(self, dim: int = 256):
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = re.sub(r"\s+", "", text)
            grams = list(chars) + [chars[i : i + 2] for i in range(len(chars) - 1)]
            for gram in grams:
                digest = hashlib.blake2b(gram.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self._dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def make_embedder(model: str, batch_size: int = 32, backend: str = "torch") -> Embedder:
    """The embedder for a model and backend setting (see `Settings`)."""
    if model == HashEmbedder.name:
        return HashEmbedder()
    # The ONNX export reads a model folder on disk: a name only sentence-transformers can
    # resolve (from its local cache) runs on torch.
    local = model == DEFAULT_MODEL or Path(model).is_dir()
    if backend == SentenceTransformerEmbedder.backend or not local:
        return SentenceTransformerEmbedder(model, batch_size=batch_size)
    from .onnx import OnnxEmbedder

    return OnnxEmbedder(model, backend, batch_size=batch_size)


def backend_of(embedder: Embedder) -> str:
    """What computes an embedder's vectors; embedders that do not say count as torch."""
    return getattr(embedder, "backend", "torch")
