"""The response cache (issue 20 §1): exact, normalised request keys, per scope, in memory or in Redis.

``key.py`` (the normalised request and its sha256), ``entry.py`` (a stored reply and its bytes), ``memory.py``
(LRU by entries and bytes, TTL, injected clock), ``redis_store.py`` (``CACHE_REDIS_URL``: compressed values,
their own TTL), ``rules.py`` (whether a request is cached: its opt-in, ``cache_routes``, its temperature).
Never on disk: replies live in this process's memory or in the cache's Redis only.
"""
