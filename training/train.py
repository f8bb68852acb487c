"""Fine-tune m3e-small into the reader: answerability from [CLS], answer start/end per token.

    python -m training.train --train FILE... [--exclude-ids EVAL_FILE...] --out DIR

Writes DIR/reader.pt (weights), DIR/reader.json (layout and how it was trained),
DIR/questions.json (ids and normalised texts of every training question, which
training/export.py turns into the trained.json `qa eval` checks) and DIR/tokenizer.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

# On a shared, niced machine, OpenMP threads that spin while waiting for each other burn
# the little CPU the job gets: measured here (load 5-10), with passive waiting a run trained
# several times more pairs per CPU second. It has to be set before torch starts OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from qa.answer.reading import encode, load_tokenizer  # noqa: E402
from qa.config import resolve_model_path  # noqa: E402
from training.data import SEED, build_pairs, load, normalise, question_keys, without

BASE = "m3e-small"


class ReaderModel(torch.nn.Module):
    """The encoder and two linear heads (answerability logit, start/end logits)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = torch.nn.Dropout(0.1)
        self.answerable = torch.nn.Linear(hidden, 1)
        self.span = torch.nn.Linear(hidden, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        logit = self.answerable(self.dropout(hidden[:, 0])).squeeze(-1)
        start, end = self.span(self.dropout(hidden)).unbind(-1)
        return logit, start, end


def base_model(attn: str = "eager") -> ReaderModel:
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(
        resolve_model_path(BASE), local_files_only=True, attn_implementation=attn
    )
    return ReaderModel(encoder)


def token_span(offsets, start: int, end: int) -> tuple[int, int] | None:
    """Token indices [i, j] covering characters [start, end), or None if cut off."""
    i = next((k for k, (_, b) in enumerate(offsets) if b > start), None)
    j = next((k for k in range(len(offsets) - 1, -1, -1) if offsets[k][0] < end), None)
    if i is None or j is None or j < i or offsets[-1][1] < end:
        return None
    return i, j


def encode_pairs(pairs, tokenizer, max_len: int) -> list[dict]:
    rows = []
    for p in pairs:
        e = encode(tokenizer, p.question, p.sentence, p.before, p.after, max_len)
        span = token_span(e.offsets, p.start, p.end) if p.label else None
        rows.append(
            {
                "ids": e.ids,
                "types": e.types,
                "first": e.first,
                "n": len(e.offsets),
                "label": p.label,
                # -1: no span loss (negatives, and the few answers cut off by max_len)
                "start": e.first + span[0] if span else -1,
                "end": e.first + span[1] if span else -1,
            }
        )
    return rows


def batches(rows, size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffled batches of similar length (less padding)."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    out = []
    for begin in range(0, len(order), size * 50):
        chunk = sorted(order[begin : begin + size * 50], key=lambda k: len(rows[k]["ids"]))
        out.extend([rows[k] for k in chunk[i : i + size]] for i in range(0, len(chunk), size))
    rng.shuffle(out)
    return out


def tensors(batch: list[dict]):
    width = max(len(r["ids"]) for r in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    in_sentence = torch.zeros((len(batch), width), dtype=torch.bool)
    for i, r in enumerate(batch):
        n = len(r["ids"])
        ids[i, :n] = torch.tensor(r["ids"])
        types[i, :n] = torch.tensor(r["types"])
        mask[i, :n] = 1
        in_sentence[i, r["first"] : r["first"] + r["n"]] = True
    label = torch.tensor([float(r["label"]) for r in batch])
    start = torch.tensor([r["start"] for r in batch])
    end = torch.tensor([r["end"] for r in batch])
    return ids, mask, types, in_sentence, label, start, end


def loss_of(model, batch) -> torch.Tensor:
    """Answerability BCE, plus start/end cross-entropy over the sentence's tokens (positives)."""
    ids, mask, types, in_sentence, label, start, end = tensors(batch)
    logit, s, e = model(ids, mask, types)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, label)
    has_span = start >= 0
    if has_span.any():
        s = s.masked_fill(~in_sentence, -1e4)[has_span]
        e = e.masked_fill(~in_sentence, -1e4)[has_span]
        ce = torch.nn.functional.cross_entropy
        loss = loss + (ce(s, start[has_span]) + ce(e, end[has_span])) / 2
    return loss


def held_out(corpus, pairs, share: float):
    """(training pairs, calibration pairs): the pairs of questions of about `share` of the
    articles (chosen by a hash of the article's name) are held out of training; the export
    chooses the reader's threshold on them (training/export.py)."""
    article = {q.id: corpus.paragraphs[q.paragraph].article for q in corpus.questions}

    def held(p) -> bool:
        digest = hashlib.blake2b(article[p.qid].encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") / 2**32 < share

    return [p for p in pairs if not held(p)], [p for p in pairs if held(p)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", required=True, help="SQuAD-format files")
    parser.add_argument("--exclude-ids", nargs="*", default=[], help="evaluation files")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--freeze-layers", type=int, default=2, help="besides the embeddings")
    parser.add_argument("--limit", type=int, default=0, help="use only this many pairs")
    parser.add_argument("--max-minutes", type=float, default=37.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--calibration", type=float, default=0.05, help="share of articles held out"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    corpus = load(args.train)
    ids, texts = question_keys(args.exclude_ids)
    corpus = without(corpus, ids, texts)
    pairs = build_pairs(corpus)
    if args.limit:
        pairs = pairs[: args.limit]
    pairs, held = held_out(corpus, pairs, args.calibration)
    with open(out / "calibration.jsonl", "w", encoding="utf-8") as f:
        for p in held:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    kept = {p.qid for p in pairs}
    questions = [q for q in corpus.questions if q.id in kept]
    print(f"{len(questions)} questions, {len(pairs)} pairs, {len(held)} held out", flush=True)

    folder = Path(resolve_model_path(BASE))
    tokenizer = load_tokenizer(folder)
    rows = encode_pairs(pairs, tokenizer, args.max_len)
    cut = sum(1 for r, p in zip(rows, pairs, strict=True) if p.label and r["start"] < 0)

    model = base_model()
    frozen = [model.encoder.embeddings.word_embeddings]
    frozen += list(model.encoder.encoder.layer[: args.freeze_layers])
    for module in frozen:
        module.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps = math.ceil(args.epochs * len(rows) / args.batch)
    budget = args.max_minutes * 60

    # The machine is shared, so the pace is unknown: the learning rate warms up over the
    # first 5% and then falls linearly to zero at the end of the epochs or of the time
    # budget, whichever comes first (the pairs are shuffled, so an early end sees a sample).
    model.train()
    began, step, seen, total = time.time(), 0, 0, 0.0
    progress = 0.0
    while progress < 1.0:
        for batch in batches(rows, args.batch, rng):
            rate = min(progress / 0.05, 1.0, (1.0 - progress) / 0.95)
            for group in optimiser.param_groups:
                group["lr"] = args.lr * max(rate, 0.01)
            loss = loss_of(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            optimiser.zero_grad()
            step += 1
            seen += len(batch)
            total += loss.item()
            elapsed = time.time() - began
            progress = max(step / steps, elapsed / budget)
            if step % 50 == 0 or progress >= 1.0:
                print(
                    f"step {step}/{steps} loss {total / 50:.3f} {seen / elapsed:.1f} pairs/s "
                    f"{elapsed / 60:.1f} min",
                    flush=True,
                )
                total = 0.0
            if progress >= 1.0:
                break

    torch.save(model.state_dict(), out / "reader.pt")
    shutil.copy(folder / "tokenizer.json", out / "tokenizer.json")
    record = {
        "base": BASE,
        "max_len": args.max_len,
        "train": [Path(f).name for f in args.train],
        "excluded": [Path(f).name for f in args.exclude_ids],
        "questions": len(questions),
        "pairs": len(pairs),
        "calibration_pairs": len(held),
        "answers_cut_by_max_len": cut,
        "epochs": args.epochs,  # asked for; the time budget may end it sooner
        "epochs_done": round(seen / max(len(rows), 1), 2),
        "steps": step,
        "pairs_seen": seen,
        "batch": args.batch,
        "lr": args.lr,
        "frozen": f"word embeddings + {args.freeze_layers} layers",
        "minutes": round((time.time() - began) / 60, 1),
        "command": " ".join(sys.argv),
    }
    (out / "reader.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    seen_questions = {
        "ids": sorted(q.id for q in questions),
        "texts": sorted({normalise(q.text) for q in questions}),
    }
    (out / "questions.json").write_text(
        json.dumps(seen_questions, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
