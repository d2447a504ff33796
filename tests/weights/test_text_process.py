"""Embedding text leaves the Hugging Face libraries' process-wide settings as they were, whether lamina or the
caller imports them first (checked in fresh interpreters: those settings are fixed at first import)."""

import json
import os
import subprocess
import sys

import pytest

READ = """
import huggingface_hub.constants as hub
import transformers
state = lambda: [hub.HF_HUB_OFFLINE, hub.HF_HUB_DISABLE_PROGRESS_BARS, transformers.logging.get_verbosity(),
                 transformers.utils.logging.is_progress_bar_enabled()]
"""

CALLER_FIRST = READ + """
before = state()
from lamina.weights.text.aligner import embed_text
emb = embed_text(["x"])
print(json.dumps({"before": before, "after": state(), "shape": list(emb.shape)}))
"""

LAMINA_FIRST = """
from lamina.weights.text.aligner import embed_text
emb = embed_text(["x"])
""" + READ + """
print(json.dumps({"after": state(), "shape": list(emb.shape)}))
"""


def _run(code: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))}  # the libraries' defaults
    r = subprocess.run([sys.executable, "-c", "import json\n" + code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_settings_are_restored_when_the_caller_imported_first():
    out = _run(CALLER_FIRST)
    assert out["shape"] == [1, 384]
    assert out["after"] == out["before"]


@pytest.mark.slow
def test_lamina_importing_first_does_not_switch_the_process_offline_or_quiet():
    import logging

    out = _run(LAMINA_FIRST)
    assert out["shape"] == [1, 384]
    offline, bars_disabled, verbosity, bars = out["after"]
    assert offline is False and not bars_disabled  # not frozen by a variable lamina set during the import
    assert verbosity == logging.WARNING and bars is True  # transformers' defaults
