"""Where client keys live in Redis (docs/SCALING.md, "Client keys and spend"): key names, the record's wire form
and the admission script. Only the sha256 of a key is ever stored, never its value.

- ``<prefix>ck:hash:<sha256>``: the key's record (JSON), looked up by hash when a replica misses its cache.
- ``<prefix>ck:ids``: a hash, key id -> record (JSON, with ``revoked``), for listing and revoking.
- ``<prefix>ck:revoked``: a set of revoked hashes, read again on each (re)subscription.
- ``{<prefix>ck:<id>}:rpm|spend|use|revoked``: one key's window, spend by month, use counts and revocation
  flag, under one hash tag so the admission script touches one Redis Cluster slot.
"""

from __future__ import annotations

import json

from bkvy.core.limits.client_keys import ClientKey
from bkvy.core.limits.key_scope import NO_SCOPE, scope_of

__all__ = ["ADMIT_SCRIPT", "KeyLayout", "record_json", "record_of"]

# KEYS: rpm, spend, use, revoked. ARGV: now (unix s), rpm (0 = none), budget (-1 = none), month, member.
# Returns {verdict, detail}: {'ok', spent}, {'rpm', seconds to wait}, {'budget', spent} or {'revoked', ''}.
# The spend read and the rpm take are one atomic step: a budget spent from any replica stops every replica at
# its next admission (docs/SCALING.md).
ADMIT_SCRIPT = """
if redis.call('EXISTS', KEYS[4]) == 1 then return {'revoked', ''} end
local now, rpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local spent = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
  local count = redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
    return {'rpm', string.format('%.6f', tonumber(oldest[2]) + 60 - now)}
  end
end
if budget >= 0 and spent >= budget then return {'budget', string.format('%.10f', spent)} end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
redis.call('HINCRBY', KEYS[3], 'requests', 1)
redis.call('HSET', KEYS[3], 'last_used', ARGV[1])
return {'ok', string.format('%.10f', spent)}
"""


class KeyLayout:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ids = f"{prefix}ck:ids"
        self.revoked_set = f"{prefix}ck:revoked"

    def by_hash(self, key_hash: str) -> str:
        return f"{self.prefix}ck:hash:{key_hash}"

    def _tag(self, key_id: str) -> str:
        return "{" + f"{self.prefix}ck:{key_id}" + "}"

    def rpm(self, key_id: str) -> str:
        return f"{self._tag(key_id)}:rpm"

    def spend(self, key_id: str) -> str:
        return f"{self._tag(key_id)}:spend"

    def use(self, key_id: str) -> str:
        return f"{self._tag(key_id)}:use"

    def revoked(self, key_id: str) -> str:
        return f"{self._tag(key_id)}:revoked"

    def admit_keys(self, key_id: str) -> list[str]:
        return [self.rpm(key_id), self.spend(key_id), self.use(key_id), self.revoked(key_id)]


def record_json(key: ClientKey, *, revoked_wall: float | None = None) -> str:
    """The stored record: the hash of the key, never its value."""
    return json.dumps(
        {
            "id": key.key_id,
            "name": key.name,
            "key_hash": key.key_hash,
            "created": key.created_wall,
            "rpm": key.rpm,
            "monthly_budget_usd": key.monthly_budget_usd,
            "revoked": revoked_wall,
            **({} if key.scope == NO_SCOPE else {"scope": key.scope.as_dict()}),
        },
        separators=(",", ":"),
    )


def record_of(raw: str | bytes) -> tuple[ClientKey, float | None]:
    """The key and its revocation time (unix s, None while active). Raises ValueError on a malformed record."""
    try:
        fields = json.loads(raw)
        key = ClientKey(
            str(fields["id"]),
            str(fields["name"]),
            str(fields["key_hash"]),
            float(fields["created"]),
            None if fields["rpm"] is None else int(fields["rpm"]),
            None if fields["monthly_budget_usd"] is None else float(fields["monthly_budget_usd"]),
            scope_of(fields.get("scope")),
        )
        revoked = fields.get("revoked")
        return key, None if revoked is None else float(revoked)
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"malformed client key record ({type(error).__name__})") from None
