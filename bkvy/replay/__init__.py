"""``python main.py replay``: the transaction log replayed against a config (issue 20 §3, docs/EVALUATION.md).

A tool on the side, like the demo: only main.py imports it. ``log_reader`` reads the log, ``selection`` picks
what is replayed, ``fitting`` fits each model's latency and error episodes from it, ``transport`` answers the
real executor from that fit, ``runner`` drives it on virtual time and ``summary`` compares recorded and
replayed.
"""
