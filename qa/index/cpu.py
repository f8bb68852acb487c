"""What this CPU can do, as far as the int8 kernels that compute embeddings care."""

from __future__ import annotations

from pathlib import Path

# Instruction-set flags that choose onnxruntime's (MLAS) integer and float kernels. Without
# a VNNI flag, x86 multiplies uint8 by int8 with vpmaddubsw, which saturates (qa/index/onnx.py).
RELEVANT_FLAGS = (
    # x86-64, as /proc/cpuinfo spells them
    "sse4_1",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "avx_vnni_int8",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    # arm64
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
)


def cpu_flags() -> tuple[str, ...]:
    """The RELEVANT_FLAGS this CPU has, from /proc/cpuinfo (Linux); an empty tuple elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86 says "flags", arm64 says "Features"; every core lists the same ones.
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return tuple(f for f in RELEVANT_FLAGS if f in have)
    return ()
