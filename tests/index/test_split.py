"""Sentence splitting and paragraph chunking on real-looking Chinese text."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.index.split import sentence_texts, split_passages, split_sentences


def sentences(text: str) -> list[str]:
    return list(sentence_texts(text, split_sentences(text)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("今天天气很好。我们去公园！你来吗？", ["今天天气很好。", "我们去公园！", "你来吗？"]),
        ("第一条；第二条;第三条", ["第一条；", "第二条;", "第三条"]),
        ("他说：“好。”然后走了。", ["他说：“好。”", "然后走了。"]),
        ("「赣服通」上线了！」他说。「真快。」", ["「赣服通」上线了！」", "他说。", "「真快。」"]),
        ("（见附件。）下一句", ["（见附件。）", "下一句"]),
        (
            "「赣服通」的成功留给我们的问题是什么?通过数字化能力,政府可以更快。",
            ["「赣服通」的成功留给我们的问题是什么?", "通过数字化能力,政府可以更快。"],
        ),
        ("真的吗?!太好了！！我不信？！", ["真的吗?!", "太好了！！", "我不信？！"]),
        ("他沉默了……然后离开。", ["他沉默了……", "然后离开。"]),
        ("等一下...好吧", ["等一下...", "好吧"]),
        ("第一行\n第二行\r\n第三行", ["第一行", "第二行", "第三行"]),
        ("完成了.然后回家", ["完成了.", "然后回家"]),
        ("It works. Next one", ["It works.", "Next one"]),
    ],
)
def test_sentence_ends(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "投资3.5亿元建设新区",
        "请访问www.gov.cn查询",
        "升级到v1.2版本",
        "例如e.g. 这种写法",
        "见Dr. Wang的报告",
        "打开https://www.gov.cn/s?id=3&x=4查看",
        "文件名是报告.pdf吗",
    ],
)
def test_no_split_inside_numbers_or_ascii(text: str) -> None:
    assert sentences(text) == [text]


def test_whitespace_is_trimmed_and_offsets_point_into_text() -> None:
    text = "  第一句。   第二句！\n\n  "
    spans = split_sentences(text)
    assert sentence_texts(text, spans) == ("第一句。", "第二句！")
    assert spans[0].start == 2


def test_empty_and_whitespace_only() -> None:
    assert split_sentences("") == ()
    assert split_sentences(" \n\u3000\t") == ()
    assert split_passages("a", 0, " \n\u3000 ", 10) == ()
    assert split_passages("a", 0, "", 10) == ()


def test_long_run_without_end_mark_is_one_sentence() -> None:
    text = "字" * 5000
    assert sentences(text) == [text]


def test_short_paragraph_is_one_chunk_covering_it() -> None:
    text = " 第一句。第二句。"
    (passage,) = split_passages("doc.txt", 3, text, 100)
    assert (passage.article_id, passage.paragraph, passage.start, passage.end) == (
        "doc.txt",
        3,
        0,
        len(text),
    )
    assert passage.text == text
    assert sentence_texts(text, passage.sentences) == ("第一句。", "第二句。")


def test_long_paragraph_is_packed_into_windows_of_whole_sentences() -> None:
    text = "第一句话。第二句话。第三句话。第四句话。第五句。"
    passages = split_passages("doc.txt", 7, text, 12)
    assert [c.text for c in passages] == [
        "第一句话。第二句话。",
        "第三句话。第四句话。",
        "第五句。",
    ]
    for passage in passages:
        assert passage.paragraph == 7
        assert text[passage.start : passage.end] == passage.text
        # sentence offsets are paragraph offsets, not window offsets
        assert "".join(sentence_texts(text, passage.sentences)) == passage.text


def test_long_sentence_is_cut_after_commas() -> None:
    text = "我们认为，数字政府建设需要投入，也需要持续改进，更需要群众参与。"
    passages = split_passages("a", 0, text, 12)
    assert [c.text for c in passages] == [
        "我们认为，",
        "数字政府建设需要投入，",
        "也需要持续改进，",
        "更需要群众参与。",
    ]


def test_long_english_sentence_is_cut_at_spaces() -> None:
    text = "the quick brown fox jumps over the lazy dog"
    passages = split_passages("a", 0, text, 10)
    assert [c.text for c in passages] == ["the quick", "brown fox", "jumps", "over the", "lazy dog"]


def test_huge_line_without_punctuation_is_cut_into_windows() -> None:
    text = "数字化改革" * 4000  # 20,000 characters, no break anywhere
    passages = split_passages("a", 0, text, 300)
    assert all(0 < len(c.text) <= 300 for c in passages)
    assert "".join(c.text for c in passages) == text


@pytest.mark.slow
def test_splitting_a_megabyte_keeps_every_sentence() -> None:
    # Speed is measured by the benchmark, not asserted here; a quadratic splitter would
    # still make this test crawl visibly.
    text = "据统计，全省新增3.5亿元投资！访问www.gov.cn了解详情？他说：“好。”\n" * 25_000
    assert len(text) > 1_000_000
    spans = split_sentences(text)
    split_passages("a", 0, text, 200)
    assert len(spans) == 3 * 25_000


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_passages("a", 0, "你好。", 0)


MIXED_CHARS = list("中文数字政府好的是了3a.。！？!?；;,，、：“”「」（）\"' \n\u3000\t…")
texts = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(MIXED_CHARS)), max_size=300)


def assert_span_guarantees(text: str, spans: tuple) -> None:
    covered = 0
    previous_end = 0
    for span in spans:
        assert previous_end <= span.start < span.end <= len(text)
        piece = text[span.start : span.end]
        assert piece.strip() == piece
        assert text[previous_end : span.start].strip() == ""
        covered += len(piece)
        previous_end = span.end
    assert text[previous_end:].strip() == ""
    # every non-whitespace character lies in exactly one span
    assert sum(not ch.isspace() for ch in text) == sum(
        not ch.isspace() for span in spans for ch in text[span.start : span.end]
    )


@settings(max_examples=200, deadline=None)
@pytest.mark.slow
@given(texts)
def test_sentence_spans_cover_text(text: str) -> None:
    assert_span_guarantees(text, split_sentences(text))


@settings(max_examples=200, deadline=None)
@pytest.mark.slow
@given(texts, st.integers(min_value=1, max_value=50))
def test_passages_cover_text(text: str, max_chars: int) -> None:
    passages = split_passages("a", 5, text, max_chars)
    all_sentences = tuple(span for passage in passages for span in passage.sentences)
    assert_span_guarantees(text, all_sentences)
    if not text.strip():
        assert passages == ()
    for passage in passages:
        assert passage.paragraph == 5
        assert passage.text == text[passage.start : passage.end]
        assert len(passage.text) <= max_chars
        assert passage.sentences
        for span in passage.sentences:
            assert passage.start <= span.start < span.end <= passage.end
    for before, after in itertools.pairwise(passages):
        assert before.end <= after.start
