"""Which runbook page (``docs/runbooks/``) answers an incident or an alert rule.

>>> runbook_url("slice", "rollback", "https://runbooks.example/slicewatch")
'https://runbooks.example/slicewatch/rollback.md'
>>> runbook_url("input", "retrain", "")
'docs/runbooks/input.md'
"""

from __future__ import annotations

SIGNALS = ("slice", "quality", "input", "output", "label_coverage", "cohort")
DEFAULT_BASE = "docs/runbooks"


def runbook_page(signal: str, action: str) -> str:
    """The page's name: ``rollback`` for any rollback, else the primary signal's page."""
    return "rollback" if action == "rollback" else signal if signal in SIGNALS else "quality"


def runbook_url(signal: str, action: str, base: str = "") -> str:
    """``base`` (``alerts.runbook_base_url``; empty: the repository path) + the page."""
    return f"{(base or DEFAULT_BASE).rstrip('/')}/{runbook_page(signal, action)}.md"
