// bkvy dashboard: fetches /dashboard/data and draws it. Every value is written with textContent (never
// innerHTML), so recorded strings show as text. No inline script: the page's CSP is script-src 'self'.
"use strict";

(function () {
  const body = document.body;
  const dataUrl = body.dataset.dataUrl;
  const rangeSelect = document.getElementById("range");
  const refreshSelect = document.getElementById("refresh");
  const statusLine = document.getElementById("status");
  const tenantSelect = document.getElementById("tenant");
  const charts = {};
  let timer = null;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  const palette = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
    "#ea580c", "#475569"];

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function fmtNumber(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
  }

  function fmtRate(value) {
    return value === null || value === undefined ? "–" : fmtNumber(value * 100, 1) + " %";
  }

  function fmtMs(value) {
    return value === null || value === undefined ? "–" : fmtNumber(value, 0) + " ms";
  }

  function fillTable(id, rows, classes) {
    const tbody = document.querySelector("#" + id + " tbody");
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.textContent = "none";
      td.className = "muted";
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) {
      const tr = document.createElement("tr");
      cells.forEach(function (cell, index) {
        const td = document.createElement("td");
        td.textContent = cell === null || cell === undefined ? "" : String(cell);
        if (classes && classes[index]) td.className = classes[index](cell) || "";
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }

  function sortedEntries(counts) {
    return Object.entries(counts || {}).sort(function (a, b) { return b[1] - a[1]; });
  }

  function drawChart(id, config) {
    if (typeof Chart === "undefined") return;
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
      return;
    }
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function lineConfig(labels, datasets) {
    const grid = css("--grid");
    const text = css("--muted");
    return {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { labels: { color: text } } },
        scales: { x: { ticks: { color: text, maxTicksLimit: 8 }, grid: { color: grid } },
                  y: { beginAtZero: true, ticks: { color: text }, grid: { color: grid } } },
      },
    };
  }

  function doughnutConfig(counts) {
    const entries = sortedEntries(counts);
    return {
      type: "doughnut",
      data: { labels: entries.map(function (e) { return e[0]; }),
              datasets: [{ data: entries.map(function (e) { return e[1]; }), backgroundColor: palette }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
                 plugins: { legend: { position: "right", labels: { color: css("--muted") } } } },
    };
  }

  function shortTime(iso, rangeName) {
    const when = new Date(iso);
    if (["90d", "365d", "30d", "7d"].indexOf(rangeName) >= 0) {
      return when.toISOString().slice(5, 13).replace("T", " ") + "h";
    }
    return when.toISOString().slice(11, 16);
  }

  function render(data) {
    const s = data.summary;
    setText("kpi-total", fmtNumber(s.total, 0));
    setText("kpi-success", fmtRate(s.success_rate));
    setText("kpi-retry", fmtRate(s.retry_rate));
    setText("kpi-hedge", fmtRate(s.hedge_rate));
    setText("kpi-cache", fmtRate(s.cache_hit_rate) + " / $" + fmtNumber(s.cache_saved_usd || 0, 4));
    setText("kpi-cost", "$" + fmtNumber(s.total_cost, 4));
    setText("kpi-latency", [s.p50_ms, s.p95_ms, s.p99_ms].map(function (v) { return fmtNumber(v, 0); }).join(" / ") + " ms");
    setText("kpi-wait", fmtMs(s.average_queue_wait_ms) + " / " + fmtMs(s.average_rate_limit_wait_ms));
    setText("kpi-tokens", fmtNumber(s.input_tokens, 0) + " / " + fmtNumber(s.output_tokens, 0));

    const labels = data.series.map(function (p) { return shortTime(p.start, data.range); });
    drawChart("chart-requests", lineConfig(labels, [
      { label: "requests", data: data.series.map(function (p) { return p.requests; }), borderColor: css("--accent"), pointRadius: 0 },
      { label: "failures", data: data.series.map(function (p) { return p.failures; }), borderColor: css("--bad"), pointRadius: 0 },
    ]));
    drawChart("chart-latency", lineConfig(labels, [
      { label: "p95 ms", data: data.series.map(function (p) { return p.p95_ms; }), borderColor: css("--good"), pointRadius: 0, spanGaps: true },
    ]));
    drawChart("chart-providers", doughnutConfig(data.providers));
    drawChart("chart-models", doughnutConfig(data.models));

    fillTable("table-keys", sortedEntries(data.keys));
    fillTable("table-errors", sortedEntries(data.errors));
    fillTable("table-circuits", (data.circuits || []).map(function (c) {
      return [c.provider, c.model, c.key_id, c.state];
    }), [null, null, null, function (state) { return state === "closed" ? "good" : "bad"; }]);
    fillTable("table-recent", data.recent.map(function (r) {
      return [r.timestamp, r.client_id, r.routing_method, r.provider_used, r.model_used, r.api_key_used,
        r.success ? "yes" : "no", r.hedged ? "yes" : "", fmtNumber(r.total_time_ms, 0), r.cost_estimate === null ? "" : fmtNumber(r.cost_estimate, 6),
        r.error_type, r.error_message];
    }), [null, null, null, null, null, null, function (ok) { return ok === "yes" ? "good" : "bad"; }]);
    renderTenants(data.tenants || []);
    renderShadow(data.shadow || []);
    statusLine.textContent = "updated " + data.generated_at + " (" + data.source + ")" +
      (data.tenant ? " — tenant " + data.tenant : "");
  }

  // Tenants (issue 19): a budget row each, and a filter that asks /dashboard/data?tenant=ID.
  function renderTenants(tenants) {
    document.getElementById("tenants-panel").hidden = tenants.length === 0;
    document.getElementById("tenant-filter").hidden = tenants.length === 0;
    fillTable("table-tenants", tenants.map(function (t) {
      return [t.id, fmtNumber(t.spend_usd_this_month, 6),
        t.monthly_budget_usd === null ? "" : "$" + fmtNumber(t.monthly_budget_usd, 2), fmtRate(t.budget_used_ratio)];
    }), [null, null, null, function (used) { return used !== "–" && parseFloat(used) >= 100 ? "bad" : ""; }]);
    const known = Array.from(tenantSelect.options).map(function (o) { return o.value; });
    tenants.forEach(function (t) {
      if (known.indexOf(t.id) < 0) {
        const option = document.createElement("option");
        option.value = t.id;
        option.textContent = t.id;
        tenantSelect.appendChild(option);
      }
    });
  }

  // Shadow traffic (issue 20): per route, the primary's row and each shadow model's, numbers only.
  function renderShadow(rows) {
    document.getElementById("shadow-panel").hidden = rows.length === 0;
    fillTable("table-shadow", rows.map(function (r) {
      return [r.route, r.model, fmtNumber(r.calls, 0), fmtRate(r.success_rate),
        fmtNumber(r.p50_ms, 0) + " / " + fmtNumber(r.p95_ms, 0),
        r.cost_per_request_usd === null ? "" : "$" + fmtNumber(r.cost_per_request_usd, 6),
        r.mean_similarity === null ? "" : fmtNumber(r.mean_similarity, 2)];
    }));
  }

  async function refresh() {
    try {
      const tenant = tenantSelect.value ? "&tenant=" + encodeURIComponent(tenantSelect.value) : "";
      const response = await fetch(dataUrl + "?range=" + encodeURIComponent(rangeSelect.value) + tenant,
        { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      body.dataset.loaded = "true";
    } catch (error) {
      statusLine.textContent = "refresh failed: " + error.message;
    }
  }

  function schedule() {
    if (timer !== null) clearInterval(timer);
    timer = setInterval(refresh, Number(refreshSelect.value) * 1000);
  }

  rangeSelect.addEventListener("change", refresh);
  tenantSelect.addEventListener("change", refresh);
  refreshSelect.addEventListener("change", schedule);
  refresh();
  schedule();
})();
