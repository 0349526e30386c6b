"""adapter_for: one shared, stateless, pure adapter per provider type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bkvy.core.upstream.adapters as adapters_package
from bkvy.core.upstream.adapters import adapter_for
from bkvy.models.types import ProviderType

ADAPTER_DIR = Path(adapters_package.__file__).parent
IO_MODULES = {"aiohttp", "httpx", "requests", "socket", "urllib.request", "asyncio", "time", "os"}


@pytest.mark.parametrize("provider_type", list(ProviderType))
def test_every_provider_type_has_one_shared_adapter(provider_type) -> None:
    adapter = adapter_for(provider_type)
    assert adapter is adapter_for(provider_type)
    for method in ("build_request", "parse_reply", "build_probe", "stream_decoder"):
        assert callable(getattr(adapter, method))


def test_stream_decoders_are_fresh_per_stream() -> None:
    adapter = adapter_for(ProviderType.OPENAI)
    assert adapter.stream_decoder() is not adapter.stream_decoder()


@pytest.mark.parametrize("module_path", sorted(ADAPTER_DIR.glob("*.py")), ids=lambda p: p.name)
def test_adapters_import_no_io_or_clock(module_path: Path) -> None:
    tree = ast.parse(module_path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & IO_MODULES
