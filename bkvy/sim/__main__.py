"""`python -m bkvy.sim --port-base 18000`: run the whole fleet in the foreground (for benchmarks, demos)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .fleet import SimFleet


async def _serve(host: str, port_base: int, seed: int, is_instant: bool) -> None:
    fleet = SimFleet(seed=seed, with_default_latency=not is_instant)
    await fleet.start(host, port_base=port_base)
    try:
        for wire_format, server in fleet.servers.items():
            print(f"{wire_format:<18} {server.base_url}", flush=True)
        await asyncio.Event().wait()
    finally:
        await fleet.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bkvy.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-base", type=int, default=0, help="first port; 0 = ephemeral ports")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instant", action="store_true", help="zero latency on every default model")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port_base, args.seed, args.instant))


if __name__ == "__main__":
    main()
