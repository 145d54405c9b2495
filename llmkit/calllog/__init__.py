"""The call log: every call made through llmkit, recorded once, persisted, and read as DataFrames.

``recorder`` is the calling path's side (cheap entries, a writer thread, bounded), ``record`` builds
the records and ``secrets`` keeps credentials out of them, ``store`` / ``sqlite`` / ``postgres`` keep
them (``query`` builds every SQL store's reads, ``readcache`` keeps repeated whole-log reads cheap),
``spill`` takes calls the configured log cannot, ``config`` picks the store, ``log`` is
``llmkit.calls``, and ``frame`` (pandas, loaded on use) makes DataFrames, summaries and exports.
"""

from llmkit.calllog.config import configure_log
from llmkit.calllog.costs import register_model_cost
from llmkit.calllog.log import CallLog
from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import LogStoreError, Store

__all__ = ["COLUMNS", "CallLog", "LogStoreError", "Store", "calls", "configure_log", "register_model_cost"]

#: The call log (``llmkit.calls``).
calls = CallLog()
