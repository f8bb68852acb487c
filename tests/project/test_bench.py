"""A smoke run of the benchmark with the hash embedder: it runs and writes its report.

Only the documented no-model smoke path (`bench.py --model hash --quick`, about 15 s), with a
timeout that stops a hung or runaway benchmark in a minute or two, not ten: the figures of a
full run belong to `make bench`, not to the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CMRC = ROOT.parent / "shared" / "data" / "cmrc2018" / "cmrc2018_dev.json"


@pytest.mark.slow
@pytest.mark.skipif(not CMRC.is_file(), reason="needs the CMRC 2018 data in ../shared")
def test_benchmark_smoke_run_writes_its_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            *("--model", "hash", "--quick"),
            *("--work", str(tmp_path / "work"), "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr[-2000:]
    assert "| 1,000 |" in run.stdout and "Incremental rebuild" in run.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["quick"] is True and report["model"] == "hash"
    assert [s["paragraphs"] for s in report["sizes"]] == [200, 1000]
    assert report["builds"][0]["cosine_to_fp32_mean"] > 0.99
    assert report["incremental"]["changed"] == 1
    assert all(s["questions"] == 20 for s in report["sizes"])


SHARED = [ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data"]  # or a worktree's


@pytest.mark.slow
@pytest.mark.skipif(not any(p.is_dir() for p in SHARED), reason="needs ../shared/data")
def test_scale_benchmark_runs_at_a_small_size_and_reports_every_figure(tmp_path):
    """`benchmarks/scale.py` at 2,000 passages with the hash embedder (~15 s): the figures
    issue 23 asks for are all there, and the keyword search agrees with plain BM25."""
    out = tmp_path / "scale.json"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            *("--passages", "2000", "--model", "hash", "--questions", "40"),
            *("--work", str(tmp_path / "work"), "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    for field in (
        "build_s",
        "disk_mb",
        "load_s",
        "rss_mb",
        "ask_ms_p50",
        "ask_ms_p95",
        "search_ms_p50",
        "question_embedding_ms_p50",
        "rebuild_s",
    ):
        assert report[field] > 0, field
    assert report["passages"] == 2000 and report["questions"] == 40
    assert report["ann_recall_at_10"] is None  # 2,000 passages are searched exactly
    assert report["bm25_agrees"] is True
    assert report["rebuild"] == {"added_articles": 1000, "embedded": report["rebuild"]["embedded"]}
    assert report["rebuild"]["embedded"] >= 2000  # 1,000 articles of 2-5 paragraphs
    assert report["vectors"].startswith("stand-in")
