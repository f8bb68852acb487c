"""`import qa` stays light: no model runtime, web UI or optional store library until used.

Needs no model (it only imports), so it carries no marker and `make test-fast` runs it.
"""

from __future__ import annotations

import subprocess
import sys

# Loaded only when a real model embeds, the browser app starts, or a Milvus index is opened
# (onnxruntime and pymilvus are optional extras: `import qa` must work without them).
HEAVY = (
    "torch",
    "sentence_transformers",
    "transformers",
    "onnxruntime",
    "gradio",
    "pymilvus",
    "milvus_lite",
    "openai",  # only when a language model is configured (qa/generate/llm.py)
)


def test_importing_qa_loads_no_model_library():
    code = (
        "import qa, sys; "
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}); "
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
