"""This process's session: every call it logs carries the id (the ``session_id`` column), so that a
notebook's views (``%llm log``, ``%llm summary``, the Leaderboard) can start from its own calls.

A kernel is one process, so a kernel restart is a new session. ``LLMKIT_SESSION_ID`` names the
session instead, for work spread over several processes that should count as one (workers of a
batch run, say).
"""

from __future__ import annotations

import os

__all__ = ["SESSION_ID"]

#: Read once, at import: a session does not change its id halfway.
SESSION_ID = os.environ.get("LLMKIT_SESSION_ID", "").strip() or os.urandom(8).hex()
