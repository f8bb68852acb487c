"""Shared fixtures: a tiny real Chinese corpus, indexes built with the fast hash embedder,
and (for tests marked `model` only) the sample corpus indexed with the real model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Never reach for a model hub: every test runs offline. Set before anything imports qa.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import qa  # noqa: E402
from qa.index.embed import HashEmbedder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = ROOT / "corpus"

# Four short articles: a government app, a metro line, a marathon and a trade fair.
ARTICLES = {
    "ganfutong.txt": """赣服通上线一周年

赣服通是江西省的移动政务服务平台，于2018年11月正式上线。群众用手机就能办理社保、公积金和水电缴费等事务。

上线一周年时，赣服通已突破900万用户，集成了6697项服务和112种电子证照。

2019年11月15日，李克强总理来到江西省社保中心办事大厅，考察了赣服通的运行情况。总理说，要让政府机关干劲十足。
""",
    "metro.md": """# 南昌地铁1号线开通运营

南昌地铁1号线于2015年12月26日开通试运营，是江西省第一条地铁线路。

1号线全长28.8公里，共设24座车站，西起双港站，东至瑶湖西站。

开通首日，1号线客运量超过20万人次。列车最高运行速度为每小时80公里。
""",
    "marathon.txt": """南昌国际马拉松赛

2019年南昌国际马拉松于11月10日在八一广场鸣枪开跑，共有3万名选手参赛。

男子全程冠军由肯尼亚选手基普罗蒂奇获得，成绩为2小时11分。女子全程冠军是埃塞俄比亚选手德米图。

赛事路线经过滕王阁和秋水广场，沿途设有20个补给站和医疗点。
""",
    "porcelain.txt": """景德镇陶瓷博览会

第十六届中国景德镇国际陶瓷博览会于2019年10月18日开幕，为期五天。

本届瓷博会展览面积达6万平方米，吸引了来自40多个国家和地区的1800家企业参展。

景德镇制瓷历史超过一千年，青花瓷、玲珑瓷、粉彩瓷和颜色釉瓷被称为景德镇四大传统名瓷。
""",
}
PARAGRAPHS = 12  # three body paragraphs per article, each short enough to be one chunk

# Questions the fixture corpus answers (with a fragment the first cited sentence holds),
# and questions it knows nothing about.
ANSWERABLE = {
    "赣服通集成了多少项服务?": ("ganfutong.txt", "6697项"),
    "地铁1号线共设多少座车站?": ("metro.md", "24座车站"),
    "马拉松男子全程冠军是谁?": ("marathon.txt", "基普罗蒂奇"),
    "景德镇四大传统名瓷是什么?": ("porcelain.txt", "青花瓷"),
}
OFF_TOPIC = ("北京烤鸭怎么做?", "量子计算机的原理是什么?", "巴黎奥运会的吉祥物叫什么名字?")

HASH = qa.Settings(model="hash", progress=False)


def write_corpus(folder: Path, articles: dict[str, str] = ARTICLES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


class CountingEmbedder(HashEmbedder):
    """The hash embedder, remembering every text it was asked to embed."""

    def __init__(self, dim: int = 256):
        super().__init__(dim)
        self.texts: list[str] = []

    def encode(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        self.texts.extend(texts)
        return super().encode(texts, progress=progress)


class OtherModel(HashEmbedder):
    """A stand-in for a different embedding model: another name, another dimension."""

    name = "hash-64"

    def __init__(self):
        super().__init__(64)


def answer_key(answer: qa.Answer) -> tuple:
    """What a user sees of an answer (everything but the timing)."""
    return answer.text, answer.found, answer.citations, answer.passages


@pytest.fixture(autouse=True)
def _build_keeps_priority(monkeypatch):
    """`qa build` run in-process (cli.main) would lower the test run's own CPU priority for
    good (qa/cli.py `give_way`): the tests that check it record the call instead."""
    monkeypatch.setattr(os, "nice", lambda n: None)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The four fixture articles in tmp_path/corpus."""
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def _built_template(tmp_path_factory) -> Path:
    # Built once per session; `built_index` hands each test its own copy to change.
    root = tmp_path_factory.mktemp("template")
    write_corpus(root / "corpus")
    qa.build(root / "corpus", root / "index", HASH)
    return root


@pytest.fixture
def built_index(tmp_path: Path, _built_template: Path) -> Path:
    """tmp_path/index built with the hash model from the fixture articles in tmp_path/corpus."""
    shutil.copytree(_built_template / "corpus", tmp_path / "corpus")
    shutil.copytree(_built_template / "index", tmp_path / "index")
    return tmp_path / "index"


@pytest.fixture(scope="session")
def bot(_built_template: Path) -> qa.Assistant:
    """A loaded assistant over the fixture corpus, shared by read-only tests."""
    return qa.load(_built_template / "index", HASH)


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """The sample corpus indexed with the real default model (only for `model` tests)."""
    root = tmp_path_factory.mktemp("sample")
    shutil.copytree(SAMPLE_CORPUS, root / "corpus")
    qa.build(root / "corpus", root / "index", qa.Settings(model="m3e-small", progress=False))
    return root / "index"


@pytest.fixture(scope="session")
def sample_bot(sample_index: Path) -> qa.Assistant:
    """An assistant over `sample_index`, with the default settings (the reader off)."""
    return qa.load(sample_index, qa.Settings(model="m3e-small", reader=None))


@pytest.fixture(scope="session")
def sample_reader_bot(sample_index: Path) -> qa.Assistant:
    """The same with the shipped reader model on (QA_READER=on)."""
    return qa.load(sample_index, qa.Settings(model="m3e-small", reader="default"))


def run_python(code: str, *args: str, timeout: float = 120) -> dict:
    """Run `code` in a fresh interpreter (its last stdout line is JSON) and return that."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test here
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def pytest_collection_modifyitems(items) -> None:
    """Everything under tests/slow/ (builds killed mid-way, the real model end to end) is
    `slow`: `make test-fast` leaves it out."""
    slow = ROOT / "tests" / "slow"
    for item in items:
        if slow in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)
