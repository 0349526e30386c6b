"""The plain definition of a transaction log row, the oracle the tests hold ``RowRenderer`` and
``record_from_row`` to: every cell formatted one way, in ``COLUMNS`` order (not yet neutralised)."""

from __future__ import annotations

import math

from bkvy.utils.records import TransactionRecord


def to_row(rec: TransactionRecord) -> list[str]:
    """The record as CSV cells in ``COLUMNS`` order."""
    return [_format_cell(value) for value in rec]


def _format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # repr is the shortest text that reads back to the same float; nan/inf are not data.
        return repr(value) if math.isfinite(value) else ""
    return str(value)
