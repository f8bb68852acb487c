"""The browser app's handlers, without a browser: rendering, highlighting, uploads, rebuilds."""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

import pytest

import qa
from qa.stores.folder import build_lock
from ui import render
from ui.app import open_or_build, parse_auth
from ui.page import build_app, upload_pairs
from ui.render import Turn, highlight, keyword_pattern, marker_spans, reply_html
from ui.service import Service
from ui.upload import MAX_UPLOAD_BYTES, UploadRejected, safe_name, save_upload, save_uploads

HASH = qa.Settings(model="hash", progress=False)

UI_ARTICLES = {
    "ganfutong.txt": "赣服通上线一周年\n\n"
    "赣服通是江西省的移动政务服务平台,于2018年11月正式上线。群众用手机就能办理社保和公积金事务。\n\n"
    "上线一周年时,赣服通已突破900万用户,集成了6697项服务和112种电子证照。\n",
    "metro.md": "# 南昌地铁1号线开通运营\n\n"
    "南昌地铁1号线于2015年12月26日开通试运营,是江西省第一条地铁线路。\n\n"
    "1号线全长28.8公里,共设24座车站,西起双港站,东至瑶湖西站。\n",
}
EVIL = (
    "<i>恶意</i>文章\n\n"
    "这篇文章的暗号是青蛙跳舞<script>alert(1)</script>和<img src=x onerror=alert(1)>结尾。\n"
)
NEW_ARTICLE = "鄱阳湖候鸟观测站\n\n鄱阳湖候鸟观测站今年冬天记录到白鹤4128只,比去年增加三成。\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def service(tmp_path: Path) -> Service:
    corpus = write(tmp_path / "corpus", UI_ARTICLES)
    qa.build(corpus, tmp_path / "index", HASH)
    return Service(corpus, tmp_path / "index", HASH, qa.load(tmp_path / "index"))


def uploads(tmp_path: Path, files: dict[str, str | bytes]) -> list[tuple[Path, str]]:
    """Files as Gradio hands them over: a temporary folder per upload, the original name."""
    pairs = []
    for number, (name, content) in enumerate(files.items()):
        folder = tmp_path / "gradio" / str(number)
        folder.mkdir(parents=True)
        path = folder / "upload"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        pairs.append((path, name))
    return pairs


def tags_balanced(html: str) -> bool:
    """Every <mark>/<b> closed in order: the highlight never breaks the markup."""
    stack = []
    for closing, tag in re.findall(r"<(/?)(mark|b)\b[^>]*>", html):
        if closing:
            if not stack or stack.pop() != tag:
                return False
        else:
            stack.append(tag)
    return not stack


def visible_text(html: str) -> str:
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


# -- highlighting ----------------------------------------------------------------------


PARAGRAPH = "赣服通上线一周年。赣服通集成了6697项服务。用户突破900万。"


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 9), (9, 23), (23, len(PARAGRAPH))],  # first, middle and last sentence
)
def test_highlight_marks_exactly_the_cited_sentence(start, end):
    out = highlight(PARAGRAPH, start, end, keyword_pattern(["赣服通", "服务"]))
    marked = re.search(r'<mark class="qa-hit">(.*?)</mark>', out).group(1)
    assert visible_text(marked) == PARAGRAPH[start:end]
    assert visible_text(out) == PARAGRAPH
    assert tags_balanced(out)


def test_keyword_straddling_the_highlight_is_split_not_broken():
    # "一周年" crosses the start of the marked span: emphasised on both sides, tags nested.
    paragraph = "赣服通上线一周年目前已突破900万用户。"
    start = paragraph.index("周年")
    out = highlight(paragraph, start, len(paragraph), keyword_pattern(["一周年"]))
    assert tags_balanced(out)
    assert '<b class="qa-kw">一</b><mark class="qa-hit"><b class="qa-kw">周年</b>' in out
    assert visible_text(out) == paragraph


def test_the_answer_phrase_is_bold_inside_the_cited_clause_of_its_sentence():
    paragraph = "开头。赣服通上线一周年,目前已突破900万用户,集成了6697项服务。结尾。"
    sentence = (paragraph.index("赣"), paragraph.index("结尾"))
    clause = (paragraph.index("目前"), paragraph.index("集成"))
    phrase = (paragraph.index("900万"), paragraph.index("用户"))
    out = highlight(paragraph, *clause, keyword_pattern(["用户"]), phrase=phrase, context=sentence)
    assert tags_balanced(out) and visible_text(out) == paragraph
    context = re.search(r'<span class="qa-context">(.*)</span>', out).group(1)
    assert visible_text(context) == paragraph[slice(*sentence)]
    marked = re.search(r'<mark class="qa-hit">(.*?)</mark>', out).group(1)
    assert visible_text(marked) == paragraph[slice(*clause)]
    assert '<strong class="qa-phrase">900万</strong><b class="qa-kw">用户</b>' in marked
    # without a phrase or a context, nothing more than before
    assert "qa-phrase" not in highlight(paragraph, *clause, None)
    assert "qa-context" not in highlight(paragraph, *clause, None, context=clause)


def test_the_answer_bubble_shows_the_phrase_bold_in_an_extractive_answer():
    citation = qa.Citation(
        "a.txt", "标题", 0, "集成了6697项服务。", 0, 11, 0.9, phrase_start=3, phrase_end=8
    )
    answer = qa.Answer("多少项服务?", "集成了6697项服务。[1]", True, (citation,), phrase="6697项")
    html = render.reply_html(answer, 1)
    assert '集成了<strong class="qa-phrase">6697项</strong>服务。<a class="qa-cite"' in html
    written = dataclasses.replace(answer, generated=True, text="共6697项服务。[1]")
    assert "qa-phrase" not in render.reply_html(written, 1)  # a model's wording: not marked


def test_keywords_are_matched_case_insensitively_on_the_raw_text():
    out = highlight("英国Mygov模式", 0, 2, keyword_pattern(["mygov"]))
    assert '<b class="qa-kw">Mygov</b>' in out


def test_single_character_terms_are_not_emphasised():
    assert keyword_pattern(["项", "做"]) is None
    assert "<b" not in highlight("集成了6697项服务", 0, 3, keyword_pattern(["项"]))


def test_highlight_escapes_markup_in_the_article():
    paragraph = "开头<script>alert(1)</script>中间<img src=x onerror=alert(1)>结尾&"
    start = paragraph.index("<img")
    out = highlight(paragraph, start, len(paragraph), keyword_pattern(["script", "onerror"]))
    assert "<script" not in out and "<img" not in out
    assert '&lt;<b class="qa-kw">script</b>&gt;' in out
    assert '&lt;img src=x <b class="qa-kw">onerror</b>=alert(1)&gt;' in out
    assert out.endswith("&amp;</mark>")
    assert visible_text(out) == paragraph
    assert tags_balanced(out)


def test_keyword_that_is_an_html_entity_name_does_not_corrupt_escaping():
    # Keywords are found before escaping, so "amp" never matches inside "&amp;".
    out = highlight("A&B amp", 0, 3, keyword_pattern(["amp"]))
    assert out == '<mark class="qa-hit">A&amp;B</mark> <b class="qa-kw">amp</b>'


def test_out_of_range_offsets_are_clamped():
    assert visible_text(highlight("短句。", 2, 99, None)) == "短句。"


# -- the answer ------------------------------------------------------------------------


def citation(sentence: str, paragraph: str, **kw) -> qa.Citation:
    start = paragraph.index(sentence)
    fields = dict(article_id="a.txt", title="标题", paragraph=0, score=1.0)
    fields.update(kw)
    return qa.Citation(sentence=sentence, start=start, end=start + len(sentence), **fields)


def test_reply_links_each_marker_to_its_source_card():
    para = "第一句[2]里有脚注。第二句。"
    c1, c2 = citation("第一句[2]里有脚注。", para), citation("第二句。", para)
    answer = qa.Answer("问", f"{c1.sentence}[1]{c2.sentence}[2]", True, (c1, c2))
    assert [n for _, _, n in marker_spans(answer)] == [1, 2]
    out = reply_html(answer, turn=4)
    assert out.count('href="#src-4-1"') == 1 and out.count('href="#src-4-2"') == 1
    # The literal "[2]" inside the first sentence stays text.
    assert visible_text(out) == answer.text


def test_reply_escapes_the_answer_text():
    para = "暗号是<img src=x onerror=alert(1)>。"
    c = citation(para, para)
    out = reply_html(qa.Answer("问", f"{para}[1]", True, (c,)), 1)
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out


def test_not_found_is_the_plain_message(service: Service):
    shown = service.turn("北京烤鸭怎么做?", 1)
    turn, answer = shown.turn, shown.answer
    assert not answer.found
    assert visible_text(turn.reply) == "资料中没有找到相关内容。"
    assert "<mark" not in turn.sources


def test_turn_shows_the_whole_paragraph_with_the_cited_sentence_marked(service: Service):
    shown = service.turn("赣服通集成了多少项服务?", 3)
    turn, answer, terms = shown.turn, shown.answer, shown.terms
    assert answer.found
    first = answer.citations[0]
    assert "6697项" in first.sentence
    card = re.search(r'<article class="qa-source" id="src-3-1">.*?</article>', turn.sources)
    card = card.group()
    assert "第2段" in card and "ganfutong.txt" in card and "赣服通上线一周年" in card
    assert re.search(r"检索分 \d\.\d{3}", card)
    paragraph = service.assistant.paragraph(first.article_id, first.paragraph)
    body = re.search(r'<p class="qa-para">(.*?)</p>', card).group(1)
    assert visible_text(body) == paragraph
    assert visible_text(re.search(r"<mark[^>]*>(.*?)</mark>", body).group(1)) == first.sentence
    assert '<b class="qa-kw">' in body and tags_balanced(body)
    assert 'href="#src-3-1"' in turn.reply
    assert "服务" in terms


def test_escaping_of_article_title_file_name_and_text(tmp_path: Path):
    corpus = write(tmp_path / "corpus", {"<b>x&.txt": EVIL})
    qa.build(corpus, tmp_path / "index", HASH)
    service = Service(corpus, tmp_path / "index", HASH, qa.load(tmp_path / "index"))
    shown = service.turn("这篇文章的暗号是什么?", 1)
    turn, answer = shown.turn, shown.answer
    assert answer.found
    html = turn.reply + turn.sources + render.passages_html(answer, ["暗号"])
    assert "<script" not in html and "<img" not in html
    assert "<i>" not in html and "<b>x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in turn.sources
    assert "&lt;i&gt;恶意&lt;/i&gt;文章" in turn.sources
    assert "&lt;b&gt;x&amp;.txt" in turn.sources


def test_question_is_escaped_in_chat_and_panel():
    turn = Turn(1, "<img src=x onerror=alert(1)>?", "<p>答</p>", "")
    html = render.chat_messages([turn])[0]["content"] + render.panel_html([turn])
    assert "<img" not in html and "&lt;img" in html


def test_panel_keeps_earlier_sources_folded_and_linkable():
    turns = [Turn(n, f"问题{n}", "", f'<article id="src-{n}-1"></article>') for n in (1, 2, 3)]
    html = render.panel_html(turns)
    assert html.count("<details") == 2
    assert html.index('id="src-3-1"') < html.index("<details")  # the latest comes first, open
    assert all(f'id="src-{n}-1"' in html for n in (1, 2, 3))


def test_passages_list_every_retrieved_passage_with_its_score(service: Service):
    answer = service.ask("南昌地铁1号线有多少座车站?").answer
    html = render.passages_html(answer, ["车站"])
    assert html.count('<li class="qa-passage">') == len(answer.passages) > 0
    for p in answer.passages:
        assert f"{p.score:.3f}" in html


def test_api_answer_is_plain_json_data(service: Service):
    answer = service.ask("赣服通集成了多少项服务?").answer
    data = answer.to_dict()
    assert data["found"] is True and data["text"] == answer.text
    first = data["citations"][0]
    assert set(first) == {
        "n", "article_id", "title", "paragraph", "sentence", "start", "end", "score", "page", "url",
        "phrase_start", "phrase_end", "sentence_start", "sentence_end",
    }  # fmt: skip
    assert isinstance(data["phrase"], str)
    assert first["n"] == 1 and "6697项" in first["sentence"]
    assert data["passages"] and {"article_id", "text", "score"} <= set(data["passages"][0])


def test_status_line_reports_counts_model_and_build_time(service: Service):
    status = service.status()
    assert "2 篇文章" in status and "4 段" in status and "模型 hash" in status
    assert re.search(r"索引更新于 \d{4}-\d\d-\d\d \d\d:\d\d", status)
    assert "还没有索引" in render.status_html(None)


def test_asking_without_an_index_says_what_to_do(tmp_path: Path):
    service = Service(tmp_path / "corpus", tmp_path / "index", HASH)
    with pytest.raises(qa.QAError, match="添加文章"):
        service.ask("赣服通集成了多少项服务?")


# -- uploads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "saved_as"),
    [
        ("../x.txt", "x.txt"),
        ("..\\..\\x.txt", "x.txt"),
        ("/etc/passwd.txt", "passwd.txt"),
        (".hidden.md", "hidden.md"),
        ("a<b>:c?.txt", "a_b__c_.txt"),
        ("报告 2019.md", "报告 2019.md"),
    ],
)
def test_safe_name_keeps_files_inside_the_corpus(name, saved_as):
    assert safe_name(name) == saved_as


@pytest.mark.parametrize("name", ["..", "", "/", "._", "../.."])
def test_names_with_nothing_left_are_rejected(name):
    with pytest.raises(UploadRejected, match="文件名无效"):
        safe_name(name)


def test_long_names_are_cut_to_what_the_file_system_allows():
    name = safe_name("长" * 200 + ".txt")
    assert name.endswith(".txt") and len(name.encode()) <= 255


def test_path_traversal_upload_lands_in_the_corpus(tmp_path: Path):
    corpus = tmp_path / "data" / "corpus"
    result = save_uploads(uploads(tmp_path, {"../../x.txt": NEW_ARTICLE}), corpus)
    assert result.saved == (corpus / "x.txt",) and not result.rejected
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["corpus"]
    assert not (tmp_path / "x.txt").exists()


def test_unsupported_type_is_rejected_with_the_allowed_list(tmp_path: Path):
    result = save_uploads(uploads(tmp_path, {"tool.exe": "x", "notes": "y"}), tmp_path / "c")
    assert not result.saved
    assert "不支持 .exe" in result.rejected[0] and ".jsonl" in result.rejected[0]
    assert "无扩展名" in result.rejected[1]


def test_oversized_file_is_rejected(tmp_path: Path):
    ((source, _),) = uploads(tmp_path, {"big.txt": NEW_ARTICLE})
    with open(source, "r+b") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)  # sparse: fast, no 20 MB written
    with pytest.raises(UploadRejected, match="超过上限 20 MB"):
        save_upload(source, "big.txt", tmp_path / "corpus")
    assert not (tmp_path / "corpus" / "big.txt").exists()


def test_existing_name_is_never_overwritten(tmp_path: Path):
    corpus = write(tmp_path / "corpus", {"a.txt": "原来的文章\n\n原文。"})
    result = save_uploads(uploads(tmp_path, {"a.txt": NEW_ARTICLE}), corpus)
    assert not result.saved and "已有同名文件" in result.rejected[0]
    assert (corpus / "a.txt").read_text(encoding="utf-8") == "原来的文章\n\n原文。"


def test_same_name_twice_in_one_batch_keeps_the_first(tmp_path: Path):
    corpus = tmp_path / "corpus"
    pairs = uploads(tmp_path, {"a.txt": NEW_ARTICLE}) + uploads(tmp_path / "2", {"a.txt": EVIL})
    result = save_uploads(pairs, corpus)
    assert len(result.saved) == 1 and "已有同名文件" in result.rejected[0]
    assert "白鹤" in (corpus / "a.txt").read_text(encoding="utf-8")


def test_unreadable_or_empty_file_is_not_saved(tmp_path: Path):
    pairs = uploads(tmp_path, {"binary.txt": bytes(range(256)) * 50, "empty.md": ""})
    result = save_uploads(pairs, tmp_path / "corpus")
    assert not result.saved and len(result.rejected) == 2
    assert not any((tmp_path / "corpus").iterdir())


def test_upload_pairs_take_the_original_name_from_gradio_paths():
    assert upload_pairs(["/tmp/gradio/ab12/报告.md"]) == [
        (Path("/tmp/gradio/ab12/报告.md"), "报告.md")
    ]
    assert upload_pairs(None) == []


# -- rebuild after upload --------------------------------------------------------------


def test_upload_rebuilds_and_swaps_in_the_new_index(service: Service, tmp_path: Path):
    old = service.assistant
    assert not old.ask("鄱阳湖观测站记录到多少只白鹤?").found
    calls = []
    message = service.add_articles(
        uploads(tmp_path, {"候鸟.txt": NEW_ARTICLE, "x.exe": "x"}),
        lambda what, done, total: calls.append((what, done, total)),
    )
    assert "已保存:候鸟.txt" in message and "不支持 .exe" in message
    assert "新增 1" in message and "新嵌入 1 个段落" in message  # only the new article
    assert calls and calls[-1] == ("embedding", 1, 1)
    assert service.assistant is not old
    answer = service.assistant.ask("鄱阳湖观测站记录到多少只白鹤?")
    assert answer.found and "4128只" in answer.citations[0].sentence
    # A question that started on the old Assistant still finishes on it.
    assert old.ask("赣服通集成了多少项服务?").found
    assert "3 篇文章" in service.status()


def test_questions_during_a_rebuild_are_answered_from_the_old_index(
    service: Service, tmp_path: Path
):
    old = service.assistant
    during = []

    def progress(what: str, done: int, total: int) -> None:
        # Called while the new article is being embedded: the chat must keep working.
        answered = service.ask("赣服通集成了多少项服务?")
        new = service.ask("鄱阳湖观测站记录到多少只白鹤?").answer.found
        during.append((answered.assistant, answered.answer.found, new))

    service.add_articles(uploads(tmp_path, {"候鸟.txt": NEW_ARTICLE}), progress)
    assert during and all(bot is old and found and not new for bot, found, new in during)
    assert service.ask("鄱阳湖观测站记录到多少只白鹤?").answer.found


def test_nothing_saved_means_no_rebuild(service: Service, tmp_path: Path):
    old = service.assistant
    message = service.add_articles(uploads(tmp_path, {"ganfutong.txt": NEW_ARTICLE}))
    assert "已有同名文件" in message and "索引已更新" not in message
    assert service.assistant is old


def test_two_uploads_at_once_build_one_after_the_other(service: Service, tmp_path: Path):
    messages = []
    batches = [
        uploads(tmp_path / "one", {"one.txt": NEW_ARTICLE}),
        uploads(tmp_path / "two", {"two.txt": EVIL}),
    ]
    threads = [
        threading.Thread(target=lambda b=b: messages.append(service.add_articles(b)))
        for b in batches
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all("索引已更新" in m for m in messages), messages
    assert service.assistant.info().articles == 4


def test_another_process_building_is_reported_not_raised(service: Service, tmp_path: Path):
    with build_lock(service.index):
        message = service.add_articles(uploads(tmp_path, {"new.txt": NEW_ARTICLE}))
    assert "另一个进程正在建立" in message and "重新建立索引" in message
    assert (service.corpus / "new.txt").exists()
    lines = service.rebuild()  # the 重新建立索引 button, once the other build is done
    assert "新增 1" in lines[0]
    assert service.assistant.info().articles == 3


# -- starting up -----------------------------------------------------------------------


def test_serve_builds_a_missing_index_first(tmp_path: Path, capsys):
    corpus = write(tmp_path / "corpus", UI_ARTICLES)
    bot = open_or_build(corpus, tmp_path / "index", HASH)
    assert bot is not None and bot.info().articles == 2
    assert "building the index" in capsys.readouterr().err
    assert open_or_build(corpus, tmp_path / "index", HASH).info().built_at == bot.info().built_at


def test_serve_starts_empty_when_there_is_nothing_to_index(tmp_path: Path):
    (tmp_path / "corpus").mkdir()
    assert open_or_build(tmp_path / "corpus", tmp_path / "index", HASH) is None


def test_serve_refuses_an_index_built_by_another_model(tmp_path: Path):
    corpus = write(tmp_path / "corpus", UI_ARTICLES)
    qa.build(corpus, tmp_path / "index", HASH)
    with pytest.raises(qa.IndexMismatchError):
        open_or_build(corpus, tmp_path / "index", qa.Settings(model="m3e-small"))


def test_auth_is_user_colon_password():
    assert parse_auth("ann:se:cret") == ("ann", "se:cret")
    assert parse_auth(None) is None and parse_auth("") is None
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(qa.QAError, match="user:password"):
            parse_auth(bad)


def test_app_exposes_a_named_ask_endpoint(service: Service):
    demo = build_app(service)
    endpoints = {fn.api_name: fn for fn in demo.fns.values()}
    assert "ask" in endpoints
    assert endpoints["ask"].fn("赣服通集成了多少项服务?")["found"] is True


def test_a_follow_up_turn_says_how_it_was_understood(service: Service):
    first = service.turn("赣服通集成了多少项服务?", 1)
    turn1 = first.turn
    assert "按“" not in turn1.reply
    second = service.turn("它有多少用户?", 2, [(first.answer.question, first.answer)])
    turn2, answer = second.turn, second.answer
    assert answer.searched == "赣服通有多少用户?"
    assert '<p class="qa-understood">按“赣服通有多少用户?”理解</p>' in turn2.reply
    assert "900万用户" in answer.citations[0].sentence


def test_api_history_makes_a_follow_up(service: Service):
    answer = service.ask_after("它有多少用户?", ["赣服通集成了多少项服务?"]).answer
    data = answer.to_dict()
    assert data["question"] == "它有多少用户?" and data["searched"] == "赣服通有多少用户?"
    alone = service.ask_after("它有多少用户?", []).answer
    assert alone.to_dict()["searched"] == "它有多少用户?"
