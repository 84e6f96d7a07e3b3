"""Files that installed packages ship as data (corpora, attack templates), found without importing them.

>>> package_file("core", "embeddings.py").is_file()
True
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class PackageMissing(FileNotFoundError):
    """A package whose data files are needed is not installed."""


def package_file(package: str, relative: str) -> Path:
    """``relative`` inside the installed ``package`` (``PackageMissing`` says how to install it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PackageMissing(f"package {package!r} is not installed: run `make install` (it installs the corpora)")
    return Path(next(iter(spec.submodule_search_locations))) / relative
