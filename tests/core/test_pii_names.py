import importlib
import subprocess
import sys

import pytest

from core.pii_names import LANGUAGES, stop_words


@pytest.mark.parametrize("language", LANGUAGES)
def test_stop_words_are_those_of_spacys_language_module(language: str) -> None:
    assert stop_words(language) == importlib.import_module(f"spacy.lang.{language}.stop_words").STOP_WORDS


def test_importing_the_names_recognizer_loads_no_language_package() -> None:
    listed = "import sys, core.pii_names; print(*[m for m in sys.modules if m.startswith('spacy.lang.')])"
    loaded = subprocess.run([sys.executable, "-c", listed], capture_output=True, text=True, check=True).stdout.split()
    assert not [module for module in loaded if module.split(".")[2] in LANGUAGES]
