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
