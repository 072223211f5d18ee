// edgefleet dashboard: local times, sortable tables, charts, and live updates over Server-Sent Events.
// Served by the fleet server itself with htmx and uPlot beside it; nothing is loaded from anywhere else.
(function () {
  "use strict";

  var COLOURS = { healthy: "#15803d", warning: "#b45309", alarm: "#b91c1c", idle: "#475569",
                  accent: "#0f766e", second: "#6d28d9", reference: "rgba(100, 116, 139, 0.28)" };
  var sortState = {};     // table id -> {col, dir}: a live refresh keeps the viewer's order
  var detailsState = {};  // details id -> open: a live refresh keeps what the viewer opened or closed
  var charts = [];        // {el, plot, kind}

  // ---- times: the server writes ISO 8601 in UTC, the viewer reads their own zone
  var timeFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.local) return;
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      el.textContent = timeFormat.format(at);
      el.title = el.getAttribute("datetime") + " (UTC)";
      el.dataset.local = "1";
    });
  }

  // ---- sortable tables
  function cellKey(row, col) {
    var cell = row.cells[col];
    if (!cell) return "";
    return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
  }
  function sortTable(table, col, dir) {
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (r) { var k = cellKey(r, col); return k === "" || !isNaN(Number(k.replace(/,/g, ""))); });
    rows.sort(function (a, b) {
      var x = cellKey(a, col), y = cellKey(b, col);
      var c = numeric ? Number(x.replace(/,/g, "")) - Number(y.replace(/,/g, "")) : x.localeCompare(y, undefined, { numeric: true });
      return dir === "ascending" ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === col) th.setAttribute("aria-sort", dir); else th.removeAttribute("aria-sort");
    });
  }
  function restoreSorts(root) {
    root.querySelectorAll("table.sortable[id]").forEach(function (table) {
      var s = sortState[table.id];
      if (s) sortTable(table, s.col, s.dir);
    });
  }
  document.addEventListener("click", function (event) {
    var th = event.target.closest("table.sortable th");
    if (!th) return;
    var table = th.closest("table");
    var col = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    if (table.id) sortState[table.id] = { col: col, dir: dir };
    sortTable(table, col, dir);
  });

  // ---- forms that ask first (abort)
  document.addEventListener("submit", function (event) {
    var message = event.target.dataset && event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // ---- charts (uPlot; the time axis is drawn in the viewer's zone)
  function width(el) { return Math.max(240, el.clientWidth || el.parentElement.clientWidth || 300); }
  function seriesOptions(kind) {
    if (kind === "latency") {
      return [{}, { label: "p50 ms", stroke: COLOURS.accent, width: 2, spanGaps: true },
                  { label: "p95 ms", stroke: COLOURS.second, width: 2, spanGaps: true }];
    }
    return [{}, { label: "inferences/s", stroke: COLOURS.accent, width: 2, fill: "rgba(15, 118, 110, 0.08)", spanGaps: true },
                { label: "errors/s", stroke: COLOURS.alarm, width: 2, spanGaps: true }];
  }
  function columns(kind, data) {
    return kind === "latency" ? [data.t, data.p50_ms, data.p95_ms] : [data.t, data.per_s, data.errors_per_s];
  }
  function drawSeries(el, data) {
    var kind = el.dataset.chart;
    var cols = columns(kind, data);
    var empty = el.parentElement.querySelector(".chart-empty");
    el.dataset.points = String(cols[0].length);
    if (empty) empty.hidden = cols[0].length > 0;
    el.hidden = cols[0].length === 0;
    if (cols[0].length === 0) return;
    var entry = charts.find(function (c) { return c.el === el; });
    if (entry) { entry.plot.setData(cols); return; }
    var plot = new uPlot({
      width: width(el), height: 220, series: seriesOptions(kind),
      scales: { x: { time: true } },
      axes: [{ stroke: "#5f6b7a", grid: { stroke: "#eef2f7" } },
             { stroke: "#5f6b7a", grid: { stroke: "#eef2f7" }, size: 50 }],
      legend: { live: true }
    }, cols, el);
    charts.push({ el: el, plot: plot });
  }

  function shares(counts) {
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    return counts.map(function (c) { return total ? c / total : 0; });
  }
  function binLabel(edges, i) {
    var lo = edges[i], hi = edges[i + 1];
    if (lo === undefined || hi === undefined) return "";
    var mid = (lo + hi) / 2;
    return Math.abs(mid) >= 100 ? mid.toFixed(0) : Math.abs(mid) >= 1 ? mid.toFixed(1) : mid.toPrecision(2);
  }
  function featureId(feature) { return "drift-" + feature.name.replace(/[^a-zA-Z0-9_-]/g, "_"); }
  function drawFeature(grid, feature) {
    var id = featureId(feature);
    var box = document.getElementById(id);
    var level = { ok: "healthy", warn: "warning", warning: "warning", alarm: "alarm" }[feature.level] || "idle";
    if (!box) {
      box = document.createElement("div");
      box.className = "drift-feature";
      box.id = id;
      var head = document.createElement("header");
      var name = document.createElement("strong");
      name.textContent = feature.name;
      var pill = document.createElement("span");
      head.appendChild(name);
      head.appendChild(pill);
      var chart = document.createElement("div");
      chart.className = "chart";
      chart.dataset.chart = "drift";
      box.appendChild(head);
      box.appendChild(chart);
      grid.appendChild(box);
    }
    var badge = box.querySelector("header span");
    badge.className = "pill state-" + level;
    badge.textContent = (feature.psi === null || feature.psi === undefined ? "" : "PSI " + feature.psi.toFixed(2) + " · ") + feature.level;
    var el = box.querySelector(".chart");
    var x = feature.live.map(function (_, i) { return i; });
    var cols = [x, shares(feature.reference), shares(feature.live)];
    el.dataset.points = String(x.length);
    var entry = charts.find(function (c) { return c.el === el; });
    if (entry) { entry.plot.setData(cols); return; }
    var plot = new uPlot({
      width: width(el), height: 150,
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, x.length - 0.5)] }, y: { range: [0, null] } },
      series: [{ label: "bin" },
               { label: "reference", fill: COLOURS.reference, stroke: "rgba(100, 116, 139, 0.6)", width: 1,
                 paths: uPlot.paths.bars({ size: [1, Infinity] }), points: { show: false } },
               { label: "live", fill: COLOURS[level] + "cc", stroke: COLOURS[level], width: 1,
                 paths: uPlot.paths.bars({ size: [0.5, Infinity] }), points: { show: false } }],
      axes: [{ stroke: "#5f6b7a", grid: { show: false }, values: function (u, splits) {
                 return splits.map(function (i) { return Number.isInteger(i) ? binLabel(feature.edges, i) : ""; });
               } },
             { stroke: "#5f6b7a", grid: { stroke: "#eef2f7" }, size: 52,
               values: function (u, splits) { return splits.map(function (v) { return Math.round(v * 100) + "%"; }); } }],
      legend: { show: false }
    }, cols, el);
    charts.push({ el: el, plot: plot });
  }

  function refreshCharts() {
    var sources = {};
    document.querySelectorAll(".chart[data-src]").forEach(function (el) {
      var src = el.dataset.src;
      (sources[src] = sources[src] || []).push(el);
    });
    Object.keys(sources).forEach(function (src) {
      fetch(src, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
        if (data) sources[src].forEach(function (el) { drawSeries(el, data); });
      });
    });
    document.querySelectorAll("[data-drift-src]").forEach(function (grid) {
      fetch(grid.dataset.driftSrc, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; }).then(function (drift) {
        if (drift) drawDrift(grid, drift);
      });
    });
  }

  var RANK = { alarm: 3, warn: 2, warning: 2, ok: 1 };
  var FIRST_FEATURES = 9;  // the worst ones at a glance; the others one click away
  function drawDrift(grid, drift) {
    var features = drift.features.slice().sort(function (a, b) {
      return (RANK[b.level] || 0) - (RANK[a.level] || 0) || (b.psi || 0) - (a.psi || 0) || a.name.localeCompare(b.name);
    });
    var empty = document.getElementById("drift-empty");
    if (empty) empty.hidden = features.length > 0;
    grid.dataset.features = String(features.length);
    var summary = document.getElementById("drift-summary");
    if (summary && features.length) {
      var counts = { alarm: 0, warn: 0 };
      features.forEach(function (f) { if (f.level in counts) counts[f.level] += 1; });
      var level = { ok: "healthy", warn: "warning", alarm: "alarm" }[drift.level] || "idle";
      summary.textContent = "";
      var pill = document.createElement("span");
      pill.className = "pill big state-" + level;
      pill.textContent = "drift: " + drift.level;
      summary.appendChild(pill);
      var words = document.createElement("span");
      words.textContent = counts.alarm + " of " + features.length + " features at alarm, " + counts.warn + " at warning" +
        (drift.estimated_accuracy === null ? "" : " · estimated accuracy " + Math.round(drift.estimated_accuracy * 100) + " %") +
        (drift.note ? " · " + drift.note : "");
      summary.appendChild(words);
      summary.hidden = false;
    }
    var rest = document.getElementById("drift-rest");
    var more = document.getElementById("drift-more");
    features.forEach(function (f, i) {
      var target = i < FIRST_FEATURES || !rest ? grid : rest;
      drawFeature(target, f);
      target.appendChild(document.getElementById(featureId(f)));  // worst first, as it stands now
    });
    if (more && rest && features.length > FIRST_FEATURES) {
      more.hidden = false;
      more.textContent = rest.hidden ? "Show all " + features.length + " features" : "Show the worst " + FIRST_FEATURES;
      more.onclick = function () {
        rest.hidden = !rest.hidden;
        more.textContent = rest.hidden ? "Show all " + features.length + " features" : "Show the worst " + FIRST_FEATURES;
        charts.forEach(function (c) { c.plot.setSize({ width: width(c.el), height: c.plot.height }); });
      };
    }
  }
  window.addEventListener("resize", function () {
    charts.forEach(function (c) {
      c.plot.setSize({ width: width(c.el), height: c.plot.height });
    });
  });

  // ---- live updates: the server says when the fleet changed; the page fetches its changed parts
  var pending = null;
  function refresh() {
    pending = null;
    if (window.htmx) window.htmx.trigger(document.body, "fleet-changed");
    refreshCharts();
  }
  function schedule() { if (!pending) pending = setTimeout(refresh, 400); }
  function connect() {
    var badge = document.getElementById("live");
    if (!badge || !window.EventSource) return;
    var text = badge.querySelector(".live-text");
    function show(state, words) { badge.dataset.state = state; text.textContent = words; }
    var last = null;
    var source = new EventSource("/dashboard/events");
    source.addEventListener("fleet", function (event) {
      if (last !== null && event.data !== last) schedule();
      last = event.data;
      show("live", "live");
      badge.title = "live updates · last change seen " + timeFormat.format(new Date());
    });
    source.addEventListener("open", function () { show("live", "live"); });
    source.addEventListener("error", function () {
      // the stream ends every half minute and reconnects; only a longer silence is worth showing
      setTimeout(function () { if (source.readyState !== EventSource.OPEN) show("offline", "reconnecting"); }, 3000);
    });
  }

  document.addEventListener("htmx:beforeSwap", function () {
    document.querySelectorAll("details[id]").forEach(function (d) { detailsState[d.id] = d.open; });
  });
  document.addEventListener("htmx:afterSwap", function () {
    document.querySelectorAll("details[id]").forEach(function (d) {
      if (d.id in detailsState) d.open = detailsState[d.id];
    });
    localTimes(document);
    restoreSorts(document);
  });

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    refreshCharts();
    connect();
  });
})();
