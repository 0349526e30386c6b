"""The dashboard in headless Chromium: charts render with the network blocked, recorded strings render as
text (no script runs), nothing is fetched from another origin.

The screenshot goes to a temp folder; with BKVY_UPDATE_SCREENSHOT=1 it refreshes docs/dashboard.png for README."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import httpx
import pytest
import uvicorn

from bkvy.api.app import create_app
from bkvy.core.config.gateway import build_config
from bkvy.core.config.settings import load_settings
from bkvy.demo import demo_providers, demo_routing
from bkvy.sim import SimFleet
from bkvy.utils.records import TransactionRecord, utc_timestamp

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
XSS_CLIENT = '<img src=x onerror="window.__xss=1">'
XSS_MESSAGE = '<script>window.__xss=2</script><b onmouseover="window.__xss=3">bold</b>'
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _serve(app, port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(400):  # ≤ 20 s, polling every 0.05 s
        if server.started:
            return server, task
        await asyncio.sleep(0.05)
    raise AssertionError("server did not start")


async def _traffic(base_url: str) -> None:
    messages = [{"role": "user", "content": "hello"}]
    async with httpx.AsyncClient(base_url=base_url) as client:
        for index in range(12):
            await client.post(
                "/llm/intelligence",
                json={"client_id": f"team-{index % 3}", "intelligence_level": "low", "messages": messages},
            )
        await client.post(
            "/llm/scenario", json={"client_id": "support", "scenario": "customer_support", "messages": messages}
        )
        await client.post(
            "/llm/direct",
            json={"client_id": "ops", "provider": "vllm", "model": "qwen2.5-7b-instruct", "messages": messages},
        )
        await client.post(
            "/llm/direct", json={"client_id": "ops", "provider": "nope", "model": "x", "messages": messages}
        )


async def test_dashboard_renders_offline_and_escapes_recorded_text(fleet: SimFleet, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: .ci/run installs it (apt-get install -y chromium)")

    settings = load_settings({}, log_dir=tmp_path, transaction_logging=True, summary_stats=True, dashboard_enabled=True)
    tenants = {"acme": {"name": "Acme", "monthly_budget_usd": 10}}  # issue 19: the tenant panel and filter
    shadow = {"low": {"models": ["gemini/gemini-2.5-flash"], "sample_percent": 100}}  # issue 20: the shadow panel
    routing = demo_routing() | {"shadow": shadow}
    app = create_app(settings, build_config(demo_providers(fleet), routing, {}, tenants_raw=tenants))
    port = _free_port()
    origin = f"http://127.0.0.1:{port}"
    server, task = await _serve(app, port)
    try:
        await _traffic(origin)
        services = app.state.services
        await services.shadow.drain(10.0)
        services.records.observe_record(
            TransactionRecord(
                timestamp=utc_timestamp(services.clock.wall()),
                request_id="xss-probe",
                client_id=XSS_CLIENT,
                routing_method="direct",
                success=False,
                error_type="bad_request",
                error_message=XSS_MESSAGE,
                total_time_ms=12.0,
            )
        )
        for request_id, is_hedged, retries in (("hedged", True, 0), ("retried-1", False, 1), ("retried-2", False, 2)):
            services.records.observe_record(
                TransactionRecord(
                    timestamp=utc_timestamp(services.clock.wall()),
                    request_id=request_id,
                    client_id="tail",
                    routing_method="scenario",
                    success=True,
                    total_time_ms=1500.0,
                    fallback_attempts=retries,
                    hedged=is_hedged,
                )
            )
        await _check_in_browser(origin, tmp_path)
    finally:
        server.should_exit = True
        await task


async def _check_in_browser(origin: str, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    foreign: list[str] = []
    console_errors: list[str] = []

    async def only_same_origin(route) -> None:
        if route.request.url.startswith(origin + "/"):
            await route.continue_()
        else:
            foreign.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1100}, locale="en-US")
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: console_errors.append(str(error)))
            await page.route("**/*", only_same_origin)
            response = await page.goto(origin + "/dashboard")
            assert response is not None and response.status == 200
            assert "script-src 'self'" in (await response.all_headers())["content-security-policy"]
            await page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
            drawn = await page.evaluate("""() => ['chart-requests', 'chart-latency', 'chart-providers', 'chart-models']
                .map(id => { const chart = Chart.getChart(document.getElementById(id));
                             return !!chart && chart.data.datasets.length > 0; })""")
            assert drawn == [True, True, True, True]
            recent_text = await page.text_content("#table-recent tbody")
            assert XSS_CLIENT in recent_text and "<script>window.__xss=2</script>" in recent_text
            assert await page.evaluate("() => window.__xss") is None
            assert await page.locator("#table-recent img, #table-recent script, #table-recent b").count() == 0
            assert (await page.text_content("#kpi-total")).strip() == "19"
            # the demo fleet answers every request at once: the injected rows are the only retries and hedge
            assert (await page.text_content("#kpi-retry")).strip() == "10.5 %"  # 2 of 19
            assert (await page.text_content("#kpi-hedge")).strip() == "5.3 %"  # 1 of 19
            hedged_cells = await page.eval_on_selector_all(
                "#table-recent tbody tr", "rows => rows.map(row => row.children[7].textContent)"
            )
            assert hedged_cells.count("yes") == 1
            await page.select_option("#range", "1h")
            await page.wait_for_function("() => document.getElementById('status').textContent.includes('live')")
            screenshot = DOCS_SCREENSHOT if os.environ.get("BKVY_UPDATE_SCREENSHOT") == "1" else tmp_path / "dash.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            shadow_text = await page.text_content("#table-shadow tbody")
            assert await page.is_visible("#shadow-panel")
            assert "primary" in shadow_text and "gemini/gemini-2.5-flash" in shadow_text and "100 %" in shadow_text
            assert "acme" in await page.text_content("#table-tenants tbody")
            await page.select_option("#tenant", "acme")
            await page.wait_for_function("() => document.getElementById('status').textContent.includes('acme')")
            assert (await page.text_content("#kpi-total")).strip() == "0"  # acme sent nothing
        finally:
            await browser.close()
    assert foreign == []
    assert console_errors == []
