"""The error tree: every class has its own stable code and a 4xx/5xx status."""

from __future__ import annotations

import bkvy.models.errors as errors_module
from bkvy.models.errors import BkvyError


def _all_error_classes() -> list[type[BkvyError]]:
    found: list[type[BkvyError]] = []
    pending = [BkvyError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_a_unique_snake_case_code():
    classes = [c for c in _all_error_classes() if c is not BkvyError]
    assert len(classes) >= 15
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)


def test_every_error_class_maps_to_a_client_or_gateway_status():
    for cls in _all_error_classes():
        if cls is not BkvyError:
            assert 400 <= cls.status < 600 and cls.status != 500, cls


def test_module_exports_the_documented_tree():
    for name in ("UnknownScenario", "AllCandidatesRateLimited", "HardTimeout", "CircuitsOpen"):
        assert issubclass(getattr(errors_module, name), BkvyError)
