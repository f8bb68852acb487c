"""The reader's recipe and layout (training/): pairs, exclusions, token layout, phrase search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.answer.reading import Encoded, best_span, encode, load_tokenizer
from qa.config import resolve_model_path
from qa.eval.evaluate import phrase_scores
from training.data import build_pairs, load, normalise, question_keys, without
from training.train import held_out

ARTICLES = [
    {
        "id": "a1",
        "title": "景德镇",
        "paragraphs": [
            {
                "context": "景德镇位于江西省东北部。宋代景德年间,皇帝命这里烧造御用瓷器。"
                "高岭土产自附近的高岭村。",
                "qas": [
                    # The offset is two characters off, as in a few CMRC questions.
                    {"id": "q1", "question": "高岭土产自哪里?",
                     "answers": [{"text": "高岭村", "answer_start": 37}]},
                    # The answer runs over two sentences: no positive can hold it.
                    {"id": "q2", "question": "景德镇在哪里?",
                     "answers": [{"text": "东北部。宋代", "answer_start": 8}]},
                ],
            },
            {
                "context": "景德镇瓷器远销欧洲。明清两代朝廷在此设立御窑厂。高岭土洁白坚硬。",
                "qas": [
                    {"id": "q3", "question": "朝廷在景德镇设立了什么?",
                     "answers": [{"text": "御窑厂", "answer_start": 20}]},
                ],
            },
        ],
    },
    {
        "id": "a2",
        "title": "南昌",
        "paragraphs": [
            {
                "context": "南昌地铁1号线于2015年开通。全长28.8公里。高岭土不产自南昌。",
                "qas": [
                    {"id": "q4", "question": "南昌地铁1号线全长多少?",
                     "answers": [{"text": "28.8公里", "answer_start": 18}]},
                ],
            }
        ],
    },
]  # fmt: skip


@pytest.fixture
def squad(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"version": "1", "data": ARTICLES}, ensure_ascii=False))
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(Path(resolve_model_path("m3e-small")))


def test_answer_found_by_text_and_split_answers_skipped(squad):
    corpus = load([squad])
    by_id = {q.id: q for q in corpus.questions}
    assert set(by_id) == {"q1", "q3", "q4"} and corpus.skipped == 1
    q1 = by_id["q1"]
    sentence = corpus.paragraphs[q1.paragraph].sentence(q1.sentence)[1]
    assert sentence[q1.start : q1.end] == "高岭村"


def test_negatives_never_hold_the_answer_and_prefer_the_same_article(squad):
    corpus = load([squad])
    pairs = build_pairs(corpus)
    assert pairs == build_pairs(corpus)  # deterministic
    for q in corpus.questions:
        mine = [p for p in pairs if p.qid == q.id]
        assert [p.label for p in mine].count(1) == 1
        for p in mine:
            if p.label == 0:
                assert not any(normalise(a) in normalise(p.sentence) for a in q.answers)
    kinds = {p.kind for p in pairs if p.qid == "q3"}
    assert "same-article" in kinds  # the other paragraph of 景德镇


def test_excluded_questions_by_id_or_text(squad, tmp_path):
    other = tmp_path / "eval.json"
    answers = [{"text": "无关", "answer_start": 0}]
    data = [{"id": "x", "paragraphs": [{"context": "无关。", "qas": [
        {"id": "q4", "question": "别的问题", "answers": answers},  # same id
        {"id": "z9", "question": "高岭土产自 哪里？", "answers": answers},  # same text
    ]}]}]  # fmt: skip
    other.write_text(json.dumps({"data": data}, ensure_ascii=False))
    kept = without(load([squad]), *question_keys([other]))
    assert [q.id for q in kept.questions] == ["q3"]


def test_held_out_articles_are_not_trained_on(squad):
    corpus = load([squad])
    pairs = build_pairs(corpus)
    kept, held = held_out(corpus, pairs, 0.5)
    assert sorted(map(id, kept + held)) == sorted(map(id, pairs))
    article = {q.id: corpus.paragraphs[q.paragraph].article for q in corpus.questions}
    assert not {article[p.qid] for p in kept} & {article[p.qid] for p in held}
    assert held_out(corpus, pairs, 0.0) == (pairs, [])


def test_layout_keeps_question_then_sentence_offsets(tokenizer):
    sentence = "南昌地铁1号线于2015年开通,全长28.8公里。"
    e = encode(tokenizer, "全长多少?", sentence, "前一句很长很长很长。" * 5, "后一句。", 64)
    assert len(e.ids) <= 64
    assert e.types[0] == 0 and e.types[-1] == 1
    assert tokenizer.id_to_token(e.ids[e.first - 1]) == "[SEP]"
    first, last = e.offsets[0], e.offsets[-1]
    assert (first[0], last[1]) == (0, len(sentence))
    assert tokenizer.id_to_token(e.ids[e.first]) == sentence[first[0] : first[1]].lower()


def test_long_sentence_is_cut_to_max_len(tokenizer):
    e = encode(tokenizer, "问题?", "长" * 300, "", "", 96)
    assert len(e.ids) == 96 and len(e.offsets) == 96 - 5 - 3  # [CLS], 4 [SEP], 问 题 ?


def test_phrase_is_searched_inside_the_sentence_only():
    e = Encoded(ids=(0,) * 8, types=(0,) * 8, first=3, offsets=((0, 1), (1, 2), (2, 3)))
    start = np.array([9.0, 0, 0, 0, 3, 0, 9, 9])
    end = np.array([9.0, 0, 0, 5, 0, 1, 9, 9])
    assert best_span(start, end, e) == (0, 0)  # not [CLS], not past the sentence, end >= start


def test_phrase_scores_match_any_reference():
    assert phrase_scores("高岭村。", ("高岭", "高岭村")) == (1.0, 1.0)
    assert phrase_scores("岭村", ("高岭村",)) == (0.0, 0.8)
    assert phrase_scores("", ("高岭村",)) == (0.0, 0.0)
