"""Hashes of a validated config: one for the whole config (``/health``) and one per upstream key (circuits).

Neither exposes a key value: both are SHA-256 digests, truncated. The key values are part of what is hashed,
so replacing a key changes both the config hash and that key's fingerprint (a fixed key gets fresh circuits).
"""

from __future__ import annotations

import hashlib
import json

from bkvy.core.config.gateway import GatewayConfig
from bkvy.core.config.replicas import split_replica_key_id

_KEY_DOMAIN = b"bkvy-upstream-key-v1\x00"  # a fingerprint is never the digest of the bare key
_CONFIG_DOMAIN = b"bkvy-config-v1\x00"
_HEX_CHARS = 16  # 64 bits: enough to tell two versions apart, too few to help anyone guess a key

KeyPair = tuple[str, str]  # (provider, key_id)


def key_fingerprints(config: GatewayConfig) -> dict[KeyPair, str]:
    """A fingerprint of each upstream key's value, by (provider, key_id); a replica's key id (``default@1``) has
    its key's, so its circuits live and are renewed with the key."""
    fingerprints = {}
    for provider_name, provider in config.providers.items():
        key_ids = {key_id for model in provider.models for key_id in provider.key_ids_for(model)} | set(provider.keys)
        for key_id in key_ids:
            base_key_id = split_replica_key_id(key_id)[0]
            fingerprints[(provider_name, key_id)] = _digest(_KEY_DOMAIN, provider.keys[base_key_id].api_key.encode())
    return fingerprints


def config_hash(config: GatewayConfig) -> str:
    """``sha256:<16 hex>`` of the validated config (key values included, so a key change changes it)."""
    # no tenants.json: the hash of before tenants existed (replicas of two versions agree on it)
    dumped = config.model_dump(mode="json", exclude={"tenants"} if not config.tenants else None)
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return "sha256:" + _digest(_CONFIG_DOMAIN, canonical.encode("utf-8"))


def _digest(domain: bytes, payload: bytes) -> str:
    return hashlib.sha256(domain + payload).hexdigest()[:_HEX_CHARS]
