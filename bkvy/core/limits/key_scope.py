"""What a client key carries for tenants and policy (issue 19 §3): its tenant, default data class, allowed model
regions, and whether it may send ``x-bkvy-source-region``. Stored as one JSON column (SQLite) or field (Redis)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from bkvy.models.policy import DataClass

__all__ = ["NO_SCOPE", "KeyScope", "add_scope_column", "scope_json", "scope_of"]


@dataclass(frozen=True, slots=True)
class KeyScope:
    tenant: str | None = None
    data_class: DataClass | None = None
    allowed_regions: tuple[str, ...] | None = None  # None: any region
    allow_source_region: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "data_class": None if self.data_class is None else self.data_class.value,
            "allowed_regions": None if self.allowed_regions is None else list(self.allowed_regions),
            "allow_source_region": self.allow_source_region,
        }


NO_SCOPE = KeyScope()


def scope_json(scope: KeyScope) -> str | None:
    """None for a key without a scope (a key of an older version reads the same)."""
    return None if scope == NO_SCOPE else json.dumps(scope.as_dict(), separators=(",", ":"))


def scope_of(raw: Any) -> KeyScope:
    """The scope of a stored value (JSON text, a dict, or None). Raises ValueError when malformed."""
    if raw is None:
        return NO_SCOPE
    try:
        fields = json.loads(raw) if isinstance(raw, str | bytes) else raw
        regions = fields.get("allowed_regions")
        data_class = fields.get("data_class")
        return KeyScope(
            tenant=None if fields.get("tenant") is None else str(fields["tenant"]),
            data_class=None if data_class is None else DataClass(data_class),
            allowed_regions=None if regions is None else tuple(str(region) for region in regions),
            allow_source_region=bool(fields.get("allow_source_region", False)),
        )
    except (AttributeError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"malformed client key scope ({type(error).__name__})") from None


def add_scope_column(connection: sqlite3.Connection) -> None:
    """A database of an older version gets the ``scope`` column (NULL: no scope)."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(client_keys)")}
    if "scope" not in columns:
        connection.execute("ALTER TABLE client_keys ADD COLUMN scope TEXT")
