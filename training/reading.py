"""Read candidate sentences with the exported reader model: onnxruntime and tokenizers, no torch.

The reader is a cross-encoder: one sequence per (question, candidate sentence), laid out as

    [CLS] question [SEP] before [SEP] sentence [SEP] after [SEP]

where `before`/`after` are a few tokens of the neighbouring sentences (context for "它", "该"),
token type 0 for the question and 1 for the rest. Two heads: the answerability logit from
[CLS], and start/end logits per token; the answer phrase is searched for inside the sentence
only. `encode` is shared by training (training/train.py) so both see the same layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CLS, SEP, PAD = "[CLS]", "[SEP]", "[PAD]"
QUESTION_TOKENS = 48  # a longer question is cut: the sentence needs the room
CONTEXT_TOKENS = 12  # at most this many tokens of each neighbouring sentence
ANSWER_TOKENS = 30  # the longest answer phrase searched for

# Where the int8 graph is not used: probabilities more than MAX_SCORE_DIFF apart from the
# fp32 graph's on PROBES, or fewer than MIN_SPAN_AGREEMENT of the answering probes' phrases
# the same (a sentence that does not answer has no phrase worth agreeing on).
MAX_SCORE_DIFF = 0.05
MIN_SPAN_AGREEMENT = 0.9

# Fixed (question, sentence, answers?) probes for the int8 check: answering and not,
# numbers, dates, names, traditional characters, mixed scripts.
PROBES = (
    ("南昌地铁1号线什么时候开通?", "南昌地铁1号线于2015年12月26日开通试运营,全长28.8公里。", True),
    ("南昌地铁1号线全长多少公里?", "南昌地铁1号线于2015年12月26日开通试运营,全长28.8公里。", True),
    ("景德镇因何得名?", "宋代景德年间,皇帝命这里烧造御用瓷器,景德镇因此得名。", True),
    ("高岭土产自哪里?", "青花瓷用钴料在坯体上绘画,再施透明釉高温烧成,蓝白相映。", False),
    ("高岭土产自哪里?", "高岭土产自附近的高岭村,质地细腻,烧成后洁白坚硬。", True),
    ("谁开创了欧洲对梵语的学术研究?", "在欧洲,梵语的学术研究,由德国学者陆特和汉斯雷顿开创。", True),
    ("誰開創了歐洲對梵語的學術研究?", "在歐洲,梵語的學術研究,由德國學者陸特和漢斯雷頓開創。", True),
    ("TaskGroup 是哪个版本新增的?", "Python 3.11 的 asyncio 新增了 TaskGroup。", True),
    ("前三季度国内生产总值增长了多少?", "数据显示,前三季度国内生产总值同比增长5.2%。", True),
    ("考试需要携带什么证件?", "注意事项:一、请携带身份证原件;二、提前十五分钟到场。", True),
    ("《战国无双3》由哪两个公司开发?", "《战国无双3》是由光荣和ω-force开发的正统续作。", True),
    ("《战国无双3》由哪两个公司开发?", "本作以三大故事为主轴,如《关东三国志》。", False),
)

log = logging.getLogger("qa")


@dataclass(frozen=True)
class Reading:
    """How well a candidate answers: `score` in 0..1, and the answer phrase as character
    offsets [start, end) in the candidate's text."""

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


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


BATCH = 8  # sequences per onnxruntime call, of similar lengths: less padding


def run(sess, tokenizer, max_len, question, candidates, before=None, after=None):
    """Raw outputs for each candidate: (answerable logits, [(start, end) token spans], encoded)."""
    before = before or [""] * len(candidates)
    after = after or [""] * len(candidates)
    encoded = [
        encode(tokenizer, question, c, b, a, max_len)
        for c, b, a in zip(candidates, before, after, strict=True)
    ]
    order = sorted(range(len(encoded)), key=lambda k: len(encoded[k].ids))
    logits = np.zeros(len(encoded), dtype=np.float32)
    spans = [(0, -1)] * len(encoded)
    for begin in range(0, len(order), BATCH):
        rows = order[begin : begin + BATCH]
        out, starts, ends = sess.run(None, batch_arrays([encoded[k] for k in rows]))
        for n, k in enumerate(rows):
            logits[k] = out[n]
            spans[k] = best_span(starts[n], ends[n], encoded[k])
    return logits, spans, encoded


@dataclass(frozen=True)
class Fidelity:
    """The int8 graph against the fp32 graph on PROBES, on one machine."""

    max_score_diff: float
    score_correlation: float
    span_agreement: float
    cpu_flags: tuple[str, ...]

    @property
    def good(self) -> bool:
        return self.max_score_diff <= MAX_SCORE_DIFF and self.span_agreement >= MIN_SPAN_AGREEMENT


def measure_fidelity(folder: Path, threads: int = 1) -> Fidelity:
    """Read PROBES with both graphs in `folder` and compare scores and phrases."""
    from qa.index.cpu import cpu_flags

    config = json.loads((folder / "reader.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(folder)
    out = []
    for name in ("model.onnx", "model-int8.onnx"):
        sess = session(folder / name, threads)
        scores, spans = [], []
        for question, sentence, _ in PROBES:
            logits, found, _ = run(sess, tokenizer, config["max_len"], question, [sentence])
            scores.append(float(sigmoid(logits)[0]))
            spans.append(found[0])
        out.append((np.array(scores), spans))
    (exact, exact_spans), (quick, quick_spans) = out
    same = [
        x == y
        for x, y, (_, _, answers) in zip(exact_spans, quick_spans, PROBES, strict=True)
        if answers
    ]
    corr = float(np.corrcoef(exact, quick)[0, 1]) if exact.std() > 0 else 1.0
    return Fidelity(
        float(np.abs(exact - quick).max()), corr, float(np.mean(same)), tuple(cpu_flags())
    )


def fidelity_file(folder: Path) -> Path:
    """This machine's record for the int8 file: new CPU flags, onnxruntime or files, new record."""
    import onnxruntime

    from qa.index.cpu import cpu_flags

    parts = [platform.machine(), *cpu_flags(), onnxruntime.__version__]
    for name in ("model.onnx", "model-int8.onnx"):
        st = (folder / name).stat()
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    key = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()
    return folder / f"fidelity-{key}.json"


def machine_fidelity(folder: Path) -> Fidelity:
    """Measured once per machine, then read from its record."""
    record = fidelity_file(folder)
    try:
        raw = json.loads(record.read_text(encoding="utf-8"))
        return Fidelity(
            raw["max_score_diff"],
            raw["score_correlation"],
            raw["span_agreement"],
            tuple(raw["cpu_flags"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not measured on this machine yet
    found = measure_fidelity(folder)
    record.write_text(json.dumps(asdict(found), indent=1) + "\n", encoding="utf-8")
    return found


class Reader:
    """The exported reader in `path` (training/export.py writes it), run by onnxruntime.

    Uses the int8 graph unless it fails this machine's check against fp32 (then fp32, with
    one warning); `runtime` says which.
    """

    def __init__(self, path: str | Path, threads: int = 2, runtime: str = "auto"):
        """`runtime`: "auto" (int8 where it passes the check), or "int8"/"fp32" to force one."""
        if runtime not in ("auto", "int8", "fp32"):
            raise ValueError(f"Unknown runtime {runtime!r}; choose auto, int8 or fp32.")
        self.folder = Path(path)
        if not (self.folder / "reader.json").is_file():
            raise FileNotFoundError(
                f"{self.folder} holds no reader model (reader.json); run `make reader`."
            )
        self.config = json.loads((self.folder / "reader.json").read_text(encoding="utf-8"))
        self.tokenizer = load_tokenizer(self.folder)
        self.runtime = "int8" if runtime == "int8" else "fp32"
        if runtime == "auto" and (self.folder / "model-int8.onnx").is_file():
            fidelity = machine_fidelity(self.folder)
            if fidelity.good:
                self.runtime = "int8"
            else:
                log.warning(
                    "The int8 reader differs from fp32 on this CPU (%s): reading with fp32.",
                    fidelity,
                )
        name = "model-int8.onnx" if self.runtime == "int8" else "model.onnx"
        self.session = session(self.folder / name, threads)

    def read(
        self,
        question: str,
        candidates: list[str],
        before: list[str] | None = None,
        after: list[str] | None = None,
    ) -> list[Reading]:
        """One Reading per candidate; `before`/`after` are optional neighbouring sentences."""
        if not candidates:
            return []
        logits, spans, encoded = run(
            self.session,
            self.tokenizer,
            self.config["max_len"],
            question,
            candidates,
            before,
            after,
        )
        out = []
        for p, (i, j), e in zip(sigmoid(logits), spans, encoded, strict=True):
            if j < i:  # an empty candidate
                out.append(Reading(float(p), 0, 0))
            else:
                out.append(Reading(float(p), e.offsets[i][0], e.offsets[j][1]))
        return out
