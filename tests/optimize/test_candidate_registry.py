"""The optimizer's candidate list: the built-ins plus whatever a plug-in registers, in any
order."""

from __future__ import annotations

import json
import subprocess
import sys

PLUGIN_FIRST = """
import json
from ferry.optimizer import Candidate, Precision
from ferry.optimizer.candidates import candidates, register_candidate

class Plugin(Candidate):
    name = "plugin-candidate"
    precision = Precision.EXACT
    description = "a plug-in's own"

    def unavailable(self, context):
        return "never built"

    def build(self, context, threads):
        raise AssertionError("never built")

register_candidate(Plugin())
print(json.dumps([c.name for c in candidates()]))
"""

BUILT_INS_ONLY = """
import json
from ferry.optimizer.candidates import candidates
print(json.dumps([c.name for c in candidates()]))
"""


def _names(script: str) -> list[str]:
    """Candidate names listed by `script` in a fresh interpreter (nothing listed before)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=True)
    names: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return names


def test_a_plugin_registered_before_the_first_listing_keeps_the_built_ins() -> None:
    built_ins = _names(BUILT_INS_ONLY)
    assert "onnxruntime-offline" in built_ins

    assert _names(PLUGIN_FIRST) == [*built_ins, "plugin-candidate"]
