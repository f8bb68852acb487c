"""The reader: a small model that reads the best candidate sentences, says which one answers
the question, marks the answer phrase in it, or finds that none does.

It is m3e-small fine-tuned as a cross-encoder (training/README.md: recipe, figures, licence).
One sequence per (question, candidate sentence):

    [CLS] question [SEP] before [SEP] sentence [SEP] after [SEP]

where `before`/`after` are a few tokens of the neighbouring sentences (context for 它, 该),
token type 0 for the question and 1 for the rest. Two heads: an answerability logit from
[CLS], and start/end logits per token; the phrase is searched for inside the sentence only.

The shipped file holds int8 weights (one scale per output channel or table row) that are
turned back into fp32 when the model loads, and the arithmetic is fp32: its results do not
depend on the CPU's integer kernels (an int8-activation graph differed from fp32 on some
CPUs). Still, on load the reader reads fixed probes and compares them with what the fp32
model gave when it was exported (reader.json); a machine where they differ is told so and
answers without the reader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DEFAULT_READER
from ..errors import QAError

CLS, SEP = "[CLS]", "[SEP]"
QUESTION_TOKENS = 48  # a longer question is cut: the sentence needs the room
CONTEXT_TOKENS = 12  # at most this many tokens of each neighbouring sentence
ANSWER_TOKENS = 30  # the longest answer phrase searched for
BATCH = 8  # sequences per onnxruntime call, of similar lengths: less padding

# Against the fp32 model's outputs on PROBES (kept in reader.json at export): a probability
# further than this from fp32's, or a phrase that differs, and the reader is not used here.
MAX_SCORE_DIFF = 0.03

# Fixed (question, sentence) probes: answering and not, numbers, dates, names, traditional
# characters, mixed scripts.
PROBES = (
    ("南昌地铁1号线什么时候开通?", "南昌地铁1号线于2015年12月26日开通试运营,全长28.8公里。"),
    ("南昌地铁1号线全长多少公里?", "南昌地铁1号线于2015年12月26日开通试运营,全长28.8公里。"),
    ("景德镇因何得名?", "宋代景德年间,皇帝命这里烧造御用瓷器,景德镇因此得名。"),
    ("高岭土产自哪里?", "青花瓷用钴料在坯体上绘画,再施透明釉高温烧成,蓝白相映。"),
    ("高岭土产自哪里?", "高岭土产自附近的高岭村,质地细腻,烧成后洁白坚硬。"),
    ("谁开创了欧洲对梵语的学术研究?", "在欧洲,梵语的学术研究,由德国学者陆特和汉斯雷顿开创。"),
    ("誰開創了歐洲對梵語的學術研究?", "在歐洲,梵語的學術研究,由德國學者陸特和漢斯雷頓開創。"),
    ("TaskGroup 是哪个版本新增的?", "Python 3.11 的 asyncio 新增了 TaskGroup。"),
    ("前三季度国内生产总值增长了多少?", "数据显示,前三季度国内生产总值同比增长5.2%。"),
    ("考试需要携带什么证件?", "注意事项:一、请携带身份证原件;二、提前十五分钟到场。"),
    ("《战国无双3》由哪两个公司开发?", "《战国无双3》是由光荣和ω-force开发的正统续作。"),
    ("《战国无双3》由哪两个公司开发?", "本作以三大故事为主轴,如《关东三国志》。"),
)

log = logging.getLogger("qa")

_NOT_WORD = re.compile(r"[\W_]+")

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "reader"
MODEL_FILE = "model-int8.onnx"
TRAINED_FILE = "trained.json"  # keys of the questions it was trained on (question_key)


def normalise(text: str) -> str:
    """A question or answer for comparing: NFKC, lower case, no punctuation or spaces."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def question_key(normalised: str) -> str:
    """How trained.json records a question: a hash of its normalised text."""
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=8).hexdigest()


class ReaderError(QAError):
    """The reader model is missing, altered, or wrong on this machine."""


@dataclass(frozen=True)
class Reading:
    """How well a candidate answers: `score` in 0..1, and the answer phrase as character
    offsets [start, end) in the candidate's text (start == end: no phrase)."""

    score: float
    start: int
    end: int


@dataclass(frozen=True)
class Encoded:
    """One sequence: token ids and types, and where the sentence's tokens are."""

    ids: tuple[int, ...]
    types: tuple[int, ...]
    first: int  # index of the sentence's first token
    offsets: tuple[tuple[int, int], ...]  # character offsets in the sentence of its tokens


def encode(tokenizer, question: str, sentence: str, before: str, after: str, max_len: int):
    """The layout in the module docstring, cut to `max_len` tokens (the sentence's end last)."""
    q, s, b, a = tokenizer.encode_batch(
        [question, sentence, before, after], add_special_tokens=False
    )
    cls, sep = tokenizer.token_to_id(CLS), tokenizer.token_to_id(SEP)
    q_ids = q.ids[:QUESTION_TOKENS]
    room = max_len - len(q_ids) - 5  # [CLS] and four [SEP]
    s_ids, s_off = s.ids[:room], s.offsets[:room]
    spare = room - len(s_ids)
    b_ids = b.ids[-min(CONTEXT_TOKENS, spare // 2) :] if spare >= 2 else []
    a_ids = a.ids[: min(CONTEXT_TOKENS, spare - len(b_ids))]
    head = [cls, *q_ids, sep]
    tail = [*b_ids, sep, *s_ids, sep, *a_ids, sep]
    return Encoded(
        ids=tuple(head + tail),
        types=(0,) * len(head) + (1,) * len(tail),
        first=len(head) + len(b_ids) + 1,
        offsets=tuple(tuple(o) for o in s_off),
    )


def batch_arrays(encoded: list[Encoded]) -> dict[str, np.ndarray]:
    """Pad sequences into the model's three int64 inputs."""
    width = max(len(e.ids) for e in encoded)
    ids = np.zeros((len(encoded), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for i, e in enumerate(encoded):
        ids[i, : len(e.ids)] = e.ids
        types[i, : len(e.ids)] = e.types
        mask[i, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def best_span(start: np.ndarray, end: np.ndarray, e: Encoded) -> tuple[int, int]:
    """The highest start + end logit phrase inside the sentence, as token indices [i, j]."""
    n = len(e.offsets)
    if n == 0:
        return 0, -1
    s = start[e.first : e.first + n]
    t = end[e.first : e.first + n]
    grid = s[:, None] + t[None, :]
    i_idx, j_idx = np.indices(grid.shape)
    grid[(j_idx < i_idx) | (j_idx - i_idx >= ANSWER_TOKENS)] = -np.inf
    i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return int(i), int(j)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def load_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def fp32_graph(path: Path) -> bytes:
    """The graph in `path` with every DequantizeLinear of a stored int8 weight replaced by
    the fp32 weight it gives: int8 on disk, fp32 arithmetic (the module docstring)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    stored = {t.name: t for t in graph.initializer}
    kept, weights = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in stored for i in node.input):
            q, scale, *zero = (numpy_helper.to_array(stored[i]) for i in node.input)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if scale.ndim:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = [z.reshape(shape) for z in zero]
            value = (q.astype(np.float32) - (zero[0] if zero else 0)) * scale
            weights.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        else:
            kept.append(node)
    used = {i for node in kept for i in node.input}
    initializers = [t for t in graph.initializer if t.name in used] + weights
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return model.SerializeToString()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Fidelity:
    """The loaded reader against the fp32 model's own outputs on PROBES."""

    max_score_diff: float
    phrases_agree: float  # share of probes with the same phrase

    @property
    def good(self) -> bool:
        return self.max_score_diff <= MAX_SCORE_DIFF and self.phrases_agree == 1.0


class Reader:
    """The reader model in `folder` (default: the one shipped in qa/models/reader), run by
    onnxruntime. Raises ReaderError when the files are missing or not the ones recorded, or
    when on this machine it does not read the probes as the fp32 model did."""

    def __init__(self, folder: str | Path = SHIPPED, threads: int = 2, check: bool = True):
        import onnxruntime as ort

        self.folder = Path(folder)
        path = self.folder / MODEL_FILE
        try:
            self.config = json.loads((self.folder / "reader.json").read_text(encoding="utf-8"))
            if sha256(path) != self.config["export"]["sha256"]:
                raise ReaderError(f"{path} is not the file reader.json records (sha256).")
            self.max_len = int(self.config["max_len"])
            self.threshold = float(self.config["threshold"])
            self.tokenizer = load_tokenizer(self.folder)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(
                fp32_graph(path), options, providers=["CPUExecutionProvider"]
            )
        except ReaderError:
            raise
        except Exception as exc:  # noqa: BLE001 - tokenizers and onnxruntime raise bare ones
            raise ReaderError(
                f"No usable reader model in {self.folder}: {type(exc).__name__}: {exc}"
            ) from None
        try:
            self.fidelity = self.check() if check else None
        except (KeyError, ValueError, TypeError) as exc:
            raise ReaderError(f"{self.folder}/reader.json has no usable probes: {exc}") from None
        if self.fidelity is not None and not self.fidelity.good:
            raise ReaderError(
                f"The reader reads its probes differently on this machine than the fp32 model "
                f"did ({self.fidelity}); set QA_READER=off, or report the CPU."
            )

    @property
    def label(self) -> str:
        """What reads, for reports: the folder, how it was trained and stored, and how close
        it reads the probes to fp32 here."""
        trained = "+".join(self.config.get("train", [])) or "?"
        diff = "unchecked" if self.fidelity is None else f"{self.fidelity.max_score_diff:.4f}"
        return (
            f"{self.folder} (trained on {trained}; {self.config['export']['recipe']}; "
            f"largest probe difference from fp32 here {diff})"
        )

    def trained_on(self, questions: list[str]) -> list[str] | None:
        """Those of `questions` the reader was trained on (None: it has no record)."""
        try:
            raw = json.loads((self.folder / TRAINED_FILE).read_text(encoding="utf-8"))
            keys = set(raw["question_keys"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return [q for q in questions if question_key(normalise(q)) in keys]

    def check(self) -> Fidelity:
        """This machine's readings of PROBES against the fp32 model's at export."""
        reference = self.config["export"]["probes"]
        diffs, same = [], []
        for (question, sentence), (score, start, end) in zip(PROBES, reference, strict=True):
            got = self.read(question, [("", sentence, "")])[0]
            diffs.append(abs(got.score - score))
            same.append((got.start, got.end) == (start, end) or score < 0.5)
        return Fidelity(float(max(diffs)), float(np.mean(same)))

    def read(self, question: str, candidates: list[tuple[str, str, str]]) -> list[Reading]:
        """One Reading per (before, sentence, after) candidate."""
        if not candidates:
            return []
        encoded = [
            encode(self.tokenizer, question, s, b, a, self.max_len) for b, s, a in candidates
        ]
        order = sorted(range(len(encoded)), key=lambda k: len(encoded[k].ids))
        out: list[Reading | None] = [None] * len(encoded)
        for begin in range(0, len(order), BATCH):
            rows = order[begin : begin + BATCH]
            logits, starts, ends = self.session.run(None, batch_arrays([encoded[k] for k in rows]))
            for n, k in enumerate(rows):
                e = encoded[k]
                i, j = best_span(starts[n], ends[n], e)
                score = float(sigmoid(logits[n]))
                if j < i:  # an empty sentence
                    out[k] = Reading(score, 0, 0)
                else:
                    out[k] = Reading(score, e.offsets[i][0], e.offsets[j][1])
        return out  # type: ignore[return-value]


_loaded: dict[str, Reader | ReaderError] = {}
_loading = threading.Lock()


def load_reader(name: str | None) -> Reader | None:
    """The reader `Settings.reader` names, loaded once per process (sessions are shared:
    onnxruntime runs them from several threads). None: no reader. The shipped model, when it
    cannot be used here (no onnxruntime, altered file, wrong on this CPU), gives None with one
    warning; a folder named explicitly raises ReaderError instead."""
    if name is None:
        return None
    if name.lower() in ("on", "default", "yes", "true", "1"):  # as QA_READER takes them
        name = DEFAULT_READER
    folder = str(SHIPPED) if name == DEFAULT_READER else name
    with _loading:
        if folder not in _loaded:
            try:
                _loaded[folder] = Reader(folder)
            except ImportError as exc:
                _loaded[folder] = ReaderError(f"the reader needs onnxruntime and onnx ({exc})")
            except ReaderError as exc:
                _loaded[folder] = exc
            if isinstance(_loaded[folder], ReaderError) and name == DEFAULT_READER:
                log.warning("Answering without the reader: %s", _loaded[folder])
    found = _loaded[folder]
    if isinstance(found, ReaderError):
        if name == DEFAULT_READER:
            return None
        raise found
    return found
