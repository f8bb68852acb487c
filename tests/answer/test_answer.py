"""Sentence choice and citation rules: back-references, the words around the asking word,
traditional characters, and the dense part of the confidence."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HASH, write_corpus

import qa
from qa.answer.confidence import DENSE_Z_RANGE, background_z
from qa.answer.sentences import answer_type, asking_sides, points_back, question_chars

# Two paragraphs where the sentence that matches the question does not hold the answer by
# itself: its neighbour does, and it points back at it (这一年) or is pointed back at (这个).
HISTORY = {
    "history.txt": """海军与政治

1974年5月，周恩来因病住进医院。这一年，江青等人发动了批林批孔运动，矛头指向周恩来。

建国初期海军按北、中、南的顺序配置军舰，形成了北海舰队强、南海舰队弱的局面。这个状态直到1980年代才有所转变。
""",
}


@pytest.fixture(scope="module")
def history_bot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    write_corpus(folder / "corpus", HISTORY)
    qa.build(folder / "corpus", folder / "index", HASH)
    return qa.load(folder / "index", qa.Settings(min_confidence=0.0))


@pytest.mark.parametrize(
    ("question", "fragments"),
    [
        # 这一年 points back at the sentence before: both are cited, as one span.
        ("批林批孔运动是哪一年发动的?", ("1974年", "批林批孔")),
        # 这个状态 points back at the matching sentence: the next one is cited with it.
        ("北海舰队强、南海舰队弱的局面什么时候才改变?", ("南海舰队弱", "1980年代")),
    ],
)
def test_sentences_that_point_back_are_cited_with_what_they_point_to(
    history_bot, question, fragments
):
    first = history_bot.ask(question).citations[0]

    assert all(fragment in first.sentence for fragment in fragments)
    paragraph = history_bot.paragraph(first.article_id, first.paragraph)
    assert paragraph[first.start : first.end] == first.sentence


def test_a_sentence_cited_with_its_neighbour_is_not_cited_or_listed_again(history_bot):
    answer = history_bot.ask("批林批孔运动是哪一年发动的?")

    shown = [c.sentence for c in answer.citations + answer.more]
    assert answer.found and len(shown) >= 2  # else the loop below would check nothing
    for n, sentence in enumerate(shown):
        assert not any(sentence in other or other in sentence for other in shown[n + 1 :])


def test_sentence_that_stands_alone_is_cited_alone(bot):
    answer = bot.ask("地铁1号线共设多少座车站?")

    whole = "1号线全长28.8公里，共设24座车站，西起双港站，东至瑶湖西站。"
    assert answer.citations[0].sentence == whole


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("这一年，江青等人发动了批林批孔运动。", True),
        ("這一年，江青等人發動了批林批孔運動。", True),
        ("「他」说，要让政府机关干劲十足。", True),
        ("同年11月，他又与匈牙利国王签订条约。", True),
        ("1974年5月，周恩来因病住进医院。", False),
        ("赣服通已突破900万用户。", False),
        ("后来，他又回到了南昌。", True),
        ("那一年，南昌地铁1号线开通。", True),
        ("其实，数字政务并不新鲜。", False),
        ("此外，江西还推出了赣服通小程序。", False),
    ],
)
def test_points_back(sentence, expected):
    assert points_back(sentence) is expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("冈底斯山脉最东可到达哪一个山脉?", ("东可到达", "山脉")),
        ("谁拒绝参加忽里台会议?", ("", "拒绝参加")),
        ("誰拒絕參加忽里台會議?", ("", "拒絕參加")),
        ("赣服通上线一周年", ("", "")),
        ("几乎所有服务都能在哪里办理?", ("务都能在", "办理")),
        ("任何人都能用赣服通办什么?", ("赣服通办", "")),
    ],
)
def test_words_around_the_asking_word(question, expected):
    assert asking_sides(question) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("男子全程冠軍是誰?", "person"),
        ("南昌地鐵哪一年開通?", "date"),
        ("一號線有多長?", "number"),
        ("冠軍來自哪個國家?", "place"),
    ],
)
def test_answer_type_of_a_traditional_question(question, expected):
    assert answer_type(question) == expected


def test_asking_words_never_count_as_matches_in_either_script():
    assert question_chars("赣服通是什么?") == set("赣服通是")
    assert question_chars("贛服通是什麼?") == set("贛服通是")


def test_background_z_grows_with_similarity_and_is_clipped():
    rng = np.random.default_rng(0)
    background = rng.normal(size=(40, 16)).astype(np.float32)
    background /= np.linalg.norm(background, axis=1, keepdims=True)
    vector = background[0]
    sims = background @ vector

    low = background_z(vector, float(np.median(sims)), background)
    high = background_z(vector, float(sims.max()), background)

    assert low < high
    assert background_z(vector, 100.0, background) == DENSE_Z_RANGE[1]
    assert background_z(vector, -100.0, background) == DENSE_Z_RANGE[0]
    assert background_z(vector, 0.5, background[:2]) == 0.0  # too few to tell


def test_sentence_pointing_back_across_a_passage_window_keeps_its_antecedent(tmp_path):
    # One paragraph longer than a passage window: the antecedent ends the first window and
    # the sentence pointing back at it opens the second.
    filler = "瓷器铺子里摆满了青花瓷和粉彩瓷，来往的客人络绎不绝。" * 3
    text = f"钱七在1866年离开家乡苏州。这一年，他在京城的琉璃厂开了一家瓷器铺子。{filler}"
    write_corpus(tmp_path / "corpus", {"qian.txt": f"钱七\n\n{text}\n"})
    settings = qa.Settings(model="hash", progress=False, passage_chars=20)
    qa.build(tmp_path / "corpus", tmp_path / "index", settings)
    bot = qa.load(tmp_path / "index", qa.Settings(min_confidence=0.0))

    first = bot.ask("钱七哪一年在琉璃厂开了瓷器铺子?").citations[0]

    assert "1866年" in first.sentence and "琉璃厂" in first.sentence
    assert bot.paragraph(first.article_id, first.paragraph)[first.start : first.end] == (
        first.sentence
    )
