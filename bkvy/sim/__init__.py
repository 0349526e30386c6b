"""Simulated LLM providers: real HTTP servers on loopback speaking each provider's wire format.

Used by end-to-end tests, `python main.py --demo` and benchmarks; never touches the network.
"""

from .fleet import SimFleet
from .knobs import ModelKnobs
from .server import WIRE_FORMATS, RealTime, SimClock, SimServer
from .stats import SimStats

__all__ = ["WIRE_FORMATS", "ModelKnobs", "RealTime", "SimClock", "SimFleet", "SimServer", "SimStats"]
