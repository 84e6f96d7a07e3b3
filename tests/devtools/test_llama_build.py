"""The llama.cpp build that `make` installs runs on any x86-64-v3 machine, not only the one that compiled it."""

import platform
import re
import subprocess
from pathlib import Path

import llama_cpp
import pytest

BEYOND_V3 = re.compile(r"%zmm|\{%k[0-7]\}|vpternlog|ldtilecfg|tileloadd")
"""AVX-512 (its zmm and mask registers, its ternary logic) and AMX (tile) instructions."""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the portable baseline is an x86-64 one")
def test_the_llama_cpp_libraries_use_no_avx512_or_amx_instructions() -> None:
    libraries = sorted((Path(llama_cpp.__file__).parent / "lib").glob("lib*.so"))
    assert libraries, "llama_cpp ships no shared libraries"
    beyond = {}
    for library in libraries:
        disassembly = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True
        ).stdout
        if found := len(BEYOND_V3.findall(disassembly)):
            beyond[library.name] = found
    assert not beyond, f"built for the build machine's CPU (AVX-512/AMX instructions): {beyond}; see the Makefile"
