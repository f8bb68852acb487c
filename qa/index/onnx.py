"""Optional faster embedding: the same model exported to ONNX and run by onnxruntime.

`pip install "qa-zh[fast]"` (onnxruntime and onnx) enables it; nothing here touches the
network. The first use exports the local sentence-transformers model with
`torch.onnx.export` (mean pooling and L2 normalisation inside the graph, exactly as
sentence-transformers does them), optionally quantises its weights to int8 with
onnxruntime's own tools, and caches the result under QA_CACHE (default ~/.cache/qa).

Backends (`Settings.backend`, env QA_BACKEND):
    torch      sentence-transformers on torch, fp32 (the reference)
    onnx       the exported graph, fp32
    onnx-int8  the exported graph with int8 weights (dynamic quantisation, RECIPE)

Int8 arithmetic depends on the CPU: on x86 without VNNI, onnxruntime multiplies the uint8
activations by int8 weights with vpmaddubsw, which adds each pair of products into a
saturating int16. Full-range int8 weights overflow it (cosine 0.73-0.86 to fp32 measured on
an AVX2-only EPYC), so RECIPE keeps weights in 7 bits, where no pair can overflow. Each
machine still checks the int8 graph against the fp32 one on PROBES the first time it loads
it (a small record beside the export, keyed by CPU flags, onnxruntime and the files) and
runs the fp32 graph, with one warning, if the mean cosine is below FIDELITY_FLOOR.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import cache_root, resolve_model_path
from ..errors import ModelNotFoundError, QAError
from .cpu import cpu_flags

BACKENDS = ("torch", "onnx", "onnx-int8")
OPSET = 17
EXPORT_VERSION = "2"  # bump when _export writes a different graph (2: eager attention)
# Texts per onnxruntime call are also capped by padded tokens, and the calls run side by
# side on one thread each: small batches keep attention buffers in each core's cache, and no
# core waits for the other within a call: about 1.8x faster here than batches of 32 long
# passages on two threads, and less padding skews the activations' int8 range.
TOKENS_PER_RUN = 512

# How onnx-int8 quantises (`quantize_dynamic` arguments); RECIPE names it in cache keys and
# records. 7-bit weights (-64..64): a pair of uint8 x int8 products stays within int16, so
# the vectors are the same with or without VNNI. Measured here: mean cosine 0.997 to fp32,
# as fast as full-range int8; uint8 weights are as exact but no faster than fp32 on this
# CPU (benchmarks/README.md). Only MatMuls: an int8 embedding table is dequantised whole at
# every call (21,128 x 512), which costs more than it saves.
RECIPE = "int8-v2: MatMul weights QInt8 per channel, 7-bit; uint8 activations per call"
QUANTISE = {
    "weight_type": "QInt8",
    "per_channel": True,
    "reduce_range": True,
    "op_types_to_quantize": ["MatMul"],
}

# Below this mean cosine to the fp32 graph on PROBES, the int8 graph is not used.
FIDELITY_FLOOR = 0.99

# Varied text for the fidelity check: a question, numbers, a long paragraph, classical
# Chinese, mixed scripts and code words, traditional characters, a list.
PROBES = (
    "赣服通集成了多少项服务?",
    "南昌地铁1号线于2015年12月26日开通试运营,全长28.8公里,共设24座车站。",
    "景德镇位于江西省东北部,制瓷历史超过一千年。宋代景德年间,皇帝命这里烧造御用瓷器,"
    "并在器底书写“景德年制”,景德镇因此得名。明清两代,朝廷在此设立御窑厂,集中了全国最好的"
    "工匠和原料。高岭土产自附近的高岭村,质地细腻,烧成后洁白坚硬,后来成为世界通用的瓷土名称。"
    "青花瓷用钴料在坯体上绘画,再施透明釉高温烧成,蓝白相映,远销欧洲和中东。如今,景德镇仍有"
    "数万名手工艺人,从拉坯、利坯到彩绘,每道工序都有专人负责。",
    "学而时习之,不亦说乎?有朋自远方来,不亦乐乎?人不知而不愠,不亦君子乎?",
    "Python 3.11 的 asyncio 模块新增了 TaskGroup,可以同时等待多个协程并统一处理异常。",
    "今日菜單:紅燒肉、清蒸魚、麻婆豆腐,另附白飯一碗,飲料請至櫃檯自取。",
    "国家统计局发布数据显示,前三季度国内生产总值同比增长5.2%,居民消费价格温和上涨。",
    "注意事项:一、请携带身份证原件;二、提前十五分钟到场;三、考场内禁止使用手机。",
)

log = logging.getLogger("qa")


def _digest(*parts: object) -> str:
    return hashlib.blake2b("\n".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _stat(path: Path) -> str:
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def _model_key(path: Path) -> str:
    """Identify a model folder by its files' names, sizes and times (cheap, no hashing of GBs)."""
    return _digest(str(path.resolve()), *(_stat(f) for f in sorted(path.iterdir()) if f.is_file()))


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise QAError(
            f"Unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}."
        )
    return backend


def export_folder(source: Path) -> Path:
    """Where a model folder's exports live: a change of model files, exporter or torch
    (which trace the graph) gives a new folder."""
    key = _digest(
        _model_key(source), EXPORT_VERSION, OPSET, _version("torch"), _version("transformers")
    )
    return cache_root() / "onnx" / f"{source.name}-{key}"


def int8_name() -> str:
    """The quantised file's name: new with each recipe and quantiser (onnx, onnxruntime)."""
    key = _digest(RECIPE, sorted(QUANTISE.items()), _version("onnx"), _onnxruntime_version())
    return f"model-int8-{key}.onnx"


def onnx_file(model: str, backend: str) -> Path:
    """The cached ONNX file for a model and backend, exported (and quantised) on first use."""
    check_backend(backend)
    source = Path(resolve_model_path(model))
    if not source.is_dir():
        raise ModelNotFoundError(
            f"The onnx backends need a local model folder; {model!r} is not one. "
            "Use --backend torch, or give the model's folder."
        )
    folder = export_folder(source)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        _export(source, fp32)
    if backend != "onnx-int8":
        return fp32
    int8 = folder / int8_name()
    if not int8.is_file():
        quantise(fp32, int8)
    return int8


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

    # Eager attention traces to MatMul, Add(mask), Softmax; the SDPA path traces to mask
    # handling (Where, IsNaN over batch x heads x tokens x tokens) that took a quarter of
    # the int8 graph's time. The vectors are the same.
    model = AutoModel.from_pretrained(
        str(source), local_files_only=True, attn_implementation="eager"
    ).eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    ids = torch.ones((2, 16), dtype=torch.long)
    # The tracer warns about shape checks it freezes; with an attention mask they are
    # constant, and the vectors match sentence-transformers (tests/index/test_onnx.py).
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


def quantise(source: Path, target: Path) -> None:
    """`source` quantised to int8 with QUANTISE into `target` (the reader model uses it too)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(f".tmp{os.getpid()}")
    options = {**QUANTISE, "weight_type": QuantType[QUANTISE["weight_type"]]}
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it suggests a pre-processing step that changes nothing here
    try:
        quantize_dynamic(str(source), str(tmp), **options)
    finally:
        quiet.setLevel(level)
    os.replace(tmp, target)


@dataclass(frozen=True)
class Fidelity:
    """Cosine of the int8 graph's vectors to the fp32 graph's on PROBES, on one machine."""

    mean: float
    min: float
    cpu_flags: tuple[str, ...]
    onnxruntime: str


def fidelity_file(int8: Path) -> Path:
    """The fidelity record of an int8 file on this machine: a new CPU (flags), onnxruntime,
    or either file of the export means a new record."""
    fp32 = int8.with_name("model.onnx")
    key = _digest(
        RECIPE,
        platform.machine(),
        *cpu_flags(),
        _onnxruntime_version(),
        _stat(int8),
        _stat(fp32),
    )
    return int8.with_name(f"fidelity-{key}.json")


def measure_fidelity(int8: Path, tokenizer, threads: int) -> Fidelity:
    """Embed PROBES with the int8 graph and with the fp32 graph beside it, and compare."""
    fp32 = int8.with_name("model.onnx")
    exact = _encode(_session(fp32), tokenizer, list(PROBES), 32, threads)
    quick = _encode(_session(int8), tokenizer, list(PROBES), 32, threads)
    cosines = np.einsum("ij,ij->i", exact, quick)
    return Fidelity(
        float(cosines.mean()), float(cosines.min()), cpu_flags(), _onnxruntime_version()
    )


def machine_fidelity(int8: Path, tokenizer, threads: int) -> Fidelity:
    """The int8 file's fidelity on this machine: measured once, then read from its record."""
    record = fidelity_file(int8)
    try:
        raw = json.loads(record.read_text(encoding="utf-8"))
        return Fidelity(
            float(raw["mean"]), float(raw["min"]), tuple(raw["cpu_flags"]), raw["onnxruntime"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not measured here yet (or unreadable): measure
    found = measure_fidelity(int8, tokenizer, threads)
    tmp = record.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(
        json.dumps({**asdict(found), "recipe": RECIPE, "machine": platform.machine()}, indent=1)
        + "\n",
        encoding="utf-8",
    )
    os.replace(tmp, record)
    return found


def _session(path: Path):
    """A session that runs each call on the calling thread (see TOKENS_PER_RUN)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _tokenizer(model: str):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(resolve_model_path(model)) / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=512)
    tokenizer.no_padding()
    return tokenizer


def _encode(session, tokenizer, texts: list[str], batch_size: int, threads: int) -> np.ndarray:
    encodings = tokenizer.encode_batch(list(texts))
    # Longest first, in batches of similar length: padding is wasted work.
    order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
    batches = []
    begin = 0
    while begin < len(texts):
        width = max(len(encodings[order[begin]].ids), 1)  # the longest left
        batches.append(order[begin : begin + max(1, min(batch_size, TOKENS_PER_RUN // width))])
        begin += len(batches[-1])

    def run(rows: np.ndarray) -> np.ndarray:
        width = max(len(encodings[r].ids) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            e = encodings[r].ids
            ids[i, : len(e)] = e
            mask[i, : len(e)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run(None, feed)[0]

    if threads > 1 and len(batches) > 1:
        with ThreadPoolExecutor(min(threads, len(batches))) as pool:
            results = list(pool.map(run, batches))
    else:
        results = [run(rows) for rows in batches]
    out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
    for rows, vectors in zip(batches, results, strict=True):
        out[rows] = vectors
    return out


class OnnxEmbedder:
    """A sentence-transformers model run by onnxruntime (see the module docstring).

    `backend` is what was asked for and what the index records; `runtime` is what computes
    the vectors ("onnx" when the int8 graph failed this machine's check) and `fidelity` the
    int8 graph's mean cosine to fp32 on PROBES here (1.0 for the fp32 backend).
    """

    def __init__(
        self, name: str, backend: str = "onnx-int8", batch_size: int = 32, threads: int = 0
    ):
        self.name = name
        self.backend = check_backend(backend)
        self.batch_size = batch_size
        self.threads = threads or (os.cpu_count() or 1)
        self._session = None
        self._tokenizer = None
        self._runtime = self.backend
        self._fidelity = 1.0
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime  # noqa: F401
                except ImportError:
                    raise ModelNotFoundError(
                        f"This index was embedded with the {self.backend} backend, which needs "
                        "onnxruntime: `pip install 'qa-zh[fast]'`, or rebuild with "
                        "`qa build --backend torch`."
                    ) from None

                path = onnx_file(self.name, self.backend)
                tokenizer = _tokenizer(self.name)
                if self.backend == "onnx-int8":
                    self._fidelity = machine_fidelity(path, tokenizer, self.threads).mean
                    if self._fidelity < FIDELITY_FLOOR:
                        log.warning(
                            "onnx-int8 vectors have mean cosine %.3f to fp32 on this CPU "
                            "(below %.2f): embedding with the fp32 ONNX graph instead, slower "
                            "but the same index.",
                            self._fidelity,
                            FIDELITY_FLOOR,
                        )
                        path, self._runtime = path.with_name("model.onnx"), "onnx"
                session = _session(path)
                self._dim = int(session.get_outputs()[0].shape[1] or 0)
                self._tokenizer = tokenizer
                self._session = session
        return self._session, self._tokenizer

    @property
    def runtime(self) -> str:
        """What computes the vectors: "onnx-int8", or "onnx" (fp32) where int8 is not exact."""
        self._load()
        return self._runtime

    @property
    def fidelity(self) -> float:
        """Mean cosine of the int8 graph to fp32 on PROBES, on this machine (1.0 for fp32)."""
        self._load()
        return self._fidelity

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
        return _encode(session, tokenizer, texts, self.batch_size, self.threads)
