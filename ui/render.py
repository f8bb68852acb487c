"""Answers as HTML for the browser: the chat reply, the source cards and the passage list.

Everything that comes from an article or a user (text, titles, file names, questions) is
escaped here, piece by piece, after the highlight offsets have been worked out on the raw
text. Nothing else in the UI builds HTML from that text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from qa import Answer, Citation
from qa.types import IndexInfo

MIN_KEYWORD_CHARS = 2  # single characters (项, 做) would light up half of every paragraph
TURNS_SHOWN = 20  # earlier questions whose sources stay reachable from their [n] links
# A source card shows this much of the paragraph on each side of the cited sentence: a
# one-paragraph 3 MB article made every answer (and the panel's earlier turns) megabytes.
SOURCE_CONTEXT_CHARS = 400


@dataclass(frozen=True)
class Turn:
    """One question and the HTML shown for it (rendered once, from the index that answered)."""

    number: int
    question: str
    reply: str  # the chat bubble
    sources: str  # the source cards


def source_id(turn: int, n: int) -> str:
    """The element id of citation `n` of question `turn`: what the [n] link jumps to."""
    return f"src-{turn}-{n}"


def keyword_pattern(terms: Iterable[str]) -> re.Pattern | None:
    """One case-insensitive pattern for the question's keywords, longest first."""
    words = sorted({t for t in terms if len(t) >= MIN_KEYWORD_CHARS}, key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)


def emphasise(text: str, keywords: re.Pattern | None) -> str:
    """`text` escaped, with every keyword wrapped in <b class="qa-kw">."""
    if keywords is None:
        return escape(text)
    out, pos = [], 0
    for match in keywords.finditer(text):
        out.append(escape(text[pos : match.start()]))
        out.append(f'<b class="qa-kw">{escape(match.group())}</b>')
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def highlight(
    paragraph: str,
    start: int,
    end: int,
    keywords: re.Pattern | None,
    phrase: tuple[int, int] | None = None,
    context: tuple[int, int] | None = None,
) -> str:
    """The paragraph as HTML: paragraph[start:end] in <mark>, the answer phrase inside it
    in <strong>, the whole sentence a cited clause belongs to (`context`) in a <span>, and
    keywords in <b>.

    Keywords are found on the whole raw paragraph first, then cut at the other tags'
    boundaries, so a keyword that straddles the cited sentence stays emphasised on both
    sides and the tags always nest.
    """
    size = len(paragraph)

    def clamp(a: int, b: int, lo: int = 0, hi: int = size) -> tuple[int, int]:
        a, b = max(lo, min(a, hi)), max(lo, min(b, hi))
        return min(a, b), max(a, b)

    start, end = clamp(start, end)
    cs, ce = (
        (min(max(context[0], 0), start), max(min(context[1], size), end))
        if context
        else (start, end)
    )
    ps, pe = clamp(*phrase, start, end) if phrase else (end, end)
    spans = [m.span() for m in keywords.finditer(paragraph)] if keywords else []

    def piece(lo: int, hi: int) -> str:
        out, pos = [], lo
        for a, b in spans:
            a, b = max(a, lo), min(b, hi)
            if a >= b:
                continue
            out.append(escape(paragraph[pos:a]))
            out.append(f'<b class="qa-kw">{escape(paragraph[a:b])}</b>')
            pos = b
        out.append(escape(paragraph[pos:hi]))
        return "".join(out)

    strong = f'<strong class="qa-phrase">{piece(ps, pe)}</strong>' if pe > ps else ""
    inside = piece(start, ps) + strong + piece(pe, end) if pe > ps else piece(start, end)
    marked = f'<mark class="qa-hit">{inside}</mark>' if end > start else ""
    if ce > cs and (cs, ce) != (start, end):
        marked = f'<span class="qa-context">{piece(cs, start)}{marked}{piece(end, ce)}</span>'
        return piece(0, cs) + marked + piece(ce, size)
    return piece(0, start) + marked + piece(end, size)


def marker_spans(answer: Answer) -> list[tuple[int, int, int]]:
    """Where each [n] marker sits in answer.text, as (start, end, n).

    Each marker is looked for right after its cited sentence, so a sentence that itself
    contains "[2]" (a footnote in the article) is not mistaken for a marker.
    """
    spans, pos = [], 0
    for n, citation in enumerate(answer.citations, 1):
        marker = f"[{n}]"
        at = answer.text.find(citation.sentence, pos)
        if at >= 0 and answer.text.startswith(marker, at + len(citation.sentence)):
            found = at + len(citation.sentence)
        else:
            found = answer.text.find(marker, pos)
        if found < 0:
            continue
        spans.append((found, found + len(marker), n))
        pos = found + len(marker)
    return spans


def reply_html(answer: Answer, turn: int) -> str:
    """The chat bubble: the answer with each [n] a link to its source card."""
    if not answer.found:
        return f'{understood_html(answer)}<p class="qa-none">{escape(answer.text)}</p>'
    out, pos = [], 0
    spans = marker_spans(answer)
    # The answer phrase in bold where the first citation's offsets put it (extractive answers:
    # their text starts with that citation's sentence).
    bold = None
    first = answer.citations[0] if answer.citations else None
    if first and first.phrase_start is not None and not answer.generated:
        at = first.phrase_start - first.start
        if answer.text.startswith(first.sentence) and 0 <= at < first.phrase_end - first.start:
            bold = (at, first.phrase_end - first.start)
    for start, end, n in spans:
        if bold and pos == 0:
            out.append(escape(answer.text[: bold[0]]))
            out.append(f'<strong class="qa-phrase">{escape(answer.text[slice(*bold)])}</strong>')
            out.append(escape(answer.text[bold[1] : start]))
        else:
            out.append(escape(answer.text[pos:start]))
        out.append(
            f'<a class="qa-cite" href="#{source_id(turn, n)}" title="查看来源 {n}">[{n}]</a>'
        )
        pos = end
    out.append(escape(answer.text[pos:]))
    return (
        f'{understood_html(answer)}{note_html(answer)}<p class="qa-answer">{"".join(out)}</p>'
        f"{generated_html(answer)}{related_html(answer)}"
    )


def note_html(answer: Answer) -> str:
    """Why a generated answer was not used (the model failed, or nothing could be verified)."""
    return f'<p class="qa-note">{escape(answer.note)}</p>' if answer.note else ""


def generated_html(answer: Answer) -> str:
    """The mark of a generated answer, and the sentences that failed verification, struck."""
    out = ""
    if answer.generated:
        out += '<p class="qa-generated">模型生成,每句已与所引原文核对</p>'
    if answer.unsupported:
        items = "".join(f"<li><del>{escape(s)}</del></li>" for s in answer.unsupported)
        out += (
            '<div class="qa-unsupported"><p class="qa-unsupported-title">未能在原文中核实</p>'
            f"<ul>{items}</ul></div>"
        )
    return out


def pending_messages(question: str, text: str) -> list[dict]:
    """The question and the reply as it streams, not yet verified."""
    return [
        {"role": "user", "content": user_html(question)},
        {
            "role": "assistant",
            "content": f'<p class="qa-streaming">{escape(text)}</p>'
            '<p class="qa-checking">生成中,完成后逐句核对原文…</p>',
        },
    ]


def understood_html(answer: Answer) -> str:
    """「按“…”理解」 when a follow-up was searched with the subject of earlier turns."""
    if answer.searched == answer.question:
        return ""
    return f'<p class="qa-understood">按“{escape(answer.searched)}”理解</p>'


def related_html(answer: Answer) -> str:
    """The next best sentences, folded under the answer and apart from it (Answer.more)."""
    if not answer.more:
        return ""
    items = "".join(
        f'<li class="qa-related">{escape(c.sentence)}'
        f'<span class="qa-file"> — {escape(c.title or c.article_id)}, '
        f"{_place(c.paragraph, c.page)}</span></li>"
        for c in answer.more
    )
    return (
        f'<details class="qa-more"><summary>相关句子({len(answer.more)})</summary>'
        f"<ul>{items}</ul></details>"
    )


def retrieval_score(answer: Answer, citation: Citation) -> float | None:
    """The retrieval score of the passage a citation was taken from."""
    for p in answer.passages:
        if (p.article_id, p.paragraph) == (citation.article_id, citation.paragraph):
            if p.start <= citation.start and citation.end <= p.end:
                return p.score
    for p in answer.passages:
        if (p.article_id, p.paragraph) == (citation.article_id, citation.paragraph):
            return p.score
    return None


def page_text(page: int | None) -> str:
    """「第3页」 for a paragraph of a PDF, "" for other articles."""
    return f"第{page}页" if page else ""


def _place(paragraph: int, page: int | None) -> str:
    """Where a sentence is: 「第3页 第2段」 in a PDF, 「第2段」 elsewhere (plain text)."""
    return " ".join(filter(None, (page_text(page), f"第{paragraph + 1}段")))


def _page_span(page: int | None) -> str:
    return f'<span class="qa-page">{page_text(page)}</span>' if page else ""


def source_link(url: str | None) -> str:
    """The article's address as a link: escaped, and only for http(s) (never javascript:)."""
    if not url or not re.match(r"https?://[^\s/?#]+", url, re.IGNORECASE) or re.search(r"\s", url):
        return ""
    href = escape(url, quote=True)
    return (
        f'<a class="qa-url" href="{href}" target="_blank" rel="noopener noreferrer nofollow">'
        "原文链接</a>"
    )


def source_card(
    answer: Answer,
    n: int,
    citation: Citation,
    paragraph: str,
    keywords: re.Pattern | None,
    turn: int,
) -> str:
    """One cited source: title, file, paragraph number, and the sentence marked in the
    paragraph (at most SOURCE_CONTEXT_CHARS on each side of it, "…" where cut)."""
    start, end = citation.start, citation.end
    phrase = (citation.phrase_start, citation.phrase_end)
    context = (citation.sentence_start, citation.sentence_end)
    if paragraph[start:end] != citation.sentence:
        # The paragraph no longer matches the citation: show the sentence on its own.
        paragraph, start, end = citation.sentence, 0, len(citation.sentence)
        phrase = context = (None, None)
    first = start if context[0] is None else min(start, context[0])
    last = end if context[1] is None else max(end, context[1])
    lo = max(0, first - SOURCE_CONTEXT_CHARS)
    hi = min(len(paragraph), last + SOURCE_CONTEXT_CHARS)
    shown = highlight(
        paragraph[lo:hi],
        start - lo,
        end - lo,
        keywords,
        phrase=None if phrase[0] is None else (phrase[0] - lo, phrase[1] - lo),
        context=None if context[0] is None else (context[0] - lo, context[1] - lo),
    )
    shown = ("…" if lo > 0 else "") + shown + ("…" if hi < len(paragraph) else "")
    score = retrieval_score(answer, citation)
    score_text = f"检索分 {score:.3f}" if score is not None else f"句子分 {citation.score:.2f}"
    return (
        f'<article class="qa-source" id="{source_id(turn, n)}">'
        f'<div class="qa-source-head"><span class="qa-n">[{n}]</span>'
        f'<span class="qa-title">{escape(citation.title)}</span></div>'
        f'<div class="qa-meta"><span class="qa-file">{escape(citation.article_id)}</span>'
        f"{_page_span(citation.page)}<span>第{citation.paragraph + 1}段</span>"
        f'<span class="qa-score">{score_text}</span>{source_link(citation.url)}</div>'
        f'<p class="qa-para">{shown}</p>'
        "</article>"
    )


def sources_html(answer: Answer, paragraphs: Sequence[str], terms: Sequence[str], turn: int) -> str:
    """The source cards of one answer; `paragraphs[i]` is the text citation i was taken from."""
    if not answer.found:
        return '<p class="qa-empty">这个问题没有可引用的来源。</p>'
    keywords = keyword_pattern(terms)
    return "".join(
        source_card(answer, n, c, paragraph, keywords, turn)
        for n, (c, paragraph) in enumerate(zip(answer.citations, paragraphs, strict=True), 1)
    )


def panel_html(turns: Sequence[Turn]) -> str:
    """The sources panel: the latest question open, earlier ones folded but still linkable."""
    if not turns:
        return (
            '<div class="qa-panel"><h2 class="qa-panel-title">来源</h2>'
            '<p class="qa-empty">提问之后,这里会列出答案引用的原文段落,引用的句子会被标出。'
            "点击答案里的 [1] [2] 可跳到对应来源。</p></div>"
        )
    latest, earlier = turns[-1], turns[-TURNS_SHOWN:-1]
    parts = [
        '<div class="qa-panel">',
        '<h2 class="qa-panel-title">来源</h2>',
        f'<p class="qa-asked">问:{escape(latest.question)}</p>',
        latest.sources,
    ]
    for turn in reversed(earlier):
        # A link into a closed <details> opens it (the browser reveals the target).
        parts.append(
            f'<details class="qa-earlier"><summary>问:{escape(turn.question)}</summary>'
            f"{turn.sources}</details>"
        )
    parts.append("</div>")
    return "".join(parts)


def passages_html(answer: Answer | None, terms: Sequence[str]) -> str:
    """Every retrieved passage of the latest answer, with its retrieval score."""
    if answer is None:
        return '<p class="qa-empty">提问之后,这里列出检索到的全部段落及其分数。</p>'
    if not answer.passages:
        return '<p class="qa-empty">没有检索到段落。</p>'
    keywords = keyword_pattern(terms)
    items = "".join(
        f'<li class="qa-passage"><div class="qa-meta"><span class="qa-score">{p.score:.3f}</span>'
        f'<span class="qa-title">{escape(p.title)}</span>'
        f'<span class="qa-file">{escape(p.article_id)}</span>'
        f"{_page_span(p.page)}<span>第{p.paragraph + 1}段</span></div>"
        f'<p class="qa-para">{emphasise(p.text, keywords)}</p></li>'
        for p in answer.passages
    )
    return f'<ol class="qa-passages">{items}</ol>'


def user_html(question: str) -> str:
    """The user's chat bubble."""
    return f'<p class="qa-question">{escape(question)}</p>'


def chat_messages(turns: Sequence[Turn], dropped: int = 0) -> list[dict]:
    """The Chatbot value (Gradio's messages format) for the conversation's `turns`, after a
    line saying that `dropped` earlier ones are no longer on the page."""
    messages = []
    if dropped:
        line = f"较早的 {dropped} 个问题已不在页面上,这里只保留最近 {len(turns)} 个。"
        messages.append({"role": "assistant", "content": f'<p class="qa-dropped">{line}</p>'})
    for turn in turns:
        messages.append({"role": "user", "content": user_html(turn.question)})
        messages.append({"role": "assistant", "content": turn.reply})
    return messages


def built_at_text(stamp: str) -> str:
    """'2025-11-27T00:40:12+0000' as '2025-11-27 00:40'."""
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z"))
    except ValueError:
        return stamp or "未知"


def status_html(info: IndexInfo | None) -> str:
    """The status line: how many articles and paragraphs, which model, when built."""
    if info is None:
        return '<p class="qa-status">还没有索引:请在下方「添加文章」上传文章。</p>'
    built = escape(info.built_at)
    return (
        '<p class="qa-status">'
        f'<span data-articles="{info.articles}">{info.articles} 篇文章</span>'
        f"<span>{info.paragraphs} 段</span>"
        f"<span>模型 {escape(info.model)}</span>"
        f'<span data-built="{built}">索引更新于 {escape(built_at_text(info.built_at))}</span>'
        "</p>"
    )
