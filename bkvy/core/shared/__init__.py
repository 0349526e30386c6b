"""State shared by every worker and replica through Redis (docs/SCALING.md): the connection, its up/down state
and the replicas' heartbeats (``state``), and the rate-limit windows (``windows``)."""
