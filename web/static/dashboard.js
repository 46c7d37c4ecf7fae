// Dashboard (the landing page): the whole fleet's traffic stacked by
// router, routers by traffic, fleet-wide top lists and the health
// summary (active alerts, routers offline, coverage low).
"use strict";
(function () {
  const { api, el, bits, bytes, badge, show, clear, emptyRow } = window.fb;
  const { settled, axisBits, yRange, sinceText, stepText } = window.fbChart;
  const colors = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e03131", "#5c940d", "#364fc7", "#862e9c"];
  const ranges = ["1h", "6h", "24h", "7d", "30d"];

  // The range lives in the URL so that a view can be bookmarked.
  const state = { range: "24h" };
  const fromURL = new URLSearchParams(location.search).get("range");
  if (ranges.includes(fromURL)) state.range = fromURL;

  const notice = document.getElementById("page-notice");
  const problems = new Set();
  function problem(msg) { problems.add(msg); notice.textContent = [...problems].join(" "); show(notice, true); }
  function clearProblems() { problems.clear(); show(notice, false); }

  const rangeButtons = document.querySelectorAll("#ranges button");
  function markRange() { rangeButtons.forEach((b) => b.classList.toggle("active", b.dataset.range === state.range)); }
  rangeButtons.forEach((b) => b.addEventListener("click", () => { state.range = b.dataset.range; refresh(); }));

  // Every load takes a ticket; an answer that arrives after a newer
  // request was sent is dropped.
  const tickets = new Map();
  function ticket(key) { const n = (tickets.get(key) || 0) + 1; tickets.set(key, n); return () => tickets.get(key) === n; }

  // The stacked chart: each router's line is drawn on top of the ones
  // before it (the largest at the bottom); the legend shows each router's
  // own rate, not the stacked sum.
  let plot = null, last = null;
  const chartBox = document.getElementById("chart");
  const dirSelect = document.getElementById("chart-dir");
  function drawChart(fs) {
    last = fs;
    const dir = dirSelect.value === "out" ? "bits_out" : "bits_in";
    const own = fs.routers.map((r) => settled(fs, r[dir]));
    const data = [fs.times];
    const defs = [{}];
    const acc = fs.times.map(() => 0);
    own.forEach((vals, i) => {
      const stacked = vals.map((v, k) => (v == null ? null : (acc[k] += v)));
      data.push(stacked);
      const c = colors[i % colors.length];
      defs.push({ label: fs.routers[i].name, stroke: c, fill: c + "33", width: 1.2,
        value: (u, v, si, idx) => (idx == null || own[i][idx] == null ? "—" : bits(own[i][idx])) });
    });
    let points = 0;
    own.forEach((vals) => { points += vals.filter((v) => v > 0).length; });
    chartBox.dataset.points = String(points);
    chartBox.dataset.lines = String(fs.routers.length);
    chartBox.dataset.since = fs.since ? String(fs.since) : "";
    document.getElementById("chart-note").textContent = (fs.since ? "collecting since " + sinceText(fs.since) + " · " : "") +
      "stacked by router · average per " + stepText(fs.step);
    if (plot) { plot.destroy(); plot = null; }
    clear(chartBox);
    if (!points) {
      chartBox.append(el("p", { class: "muted empty", id: "chart-empty" }, fs.since
        ? "Collecting since " + sinceText(fs.since) + ": the chart draws each minute once it is written (within a minute)."
        : "No traffic in this range."));
      return;
    }
    // Draw the top of the stack first so that the lower fills stay visible.
    const order = data.slice(1).map((d, i) => i).reverse();
    const width = Math.max(280, chartBox.clientWidth);
    plot = new uPlot({
      width, height: width < 600 ? 240 : 320,
      series: [defs[0], ...order.map((i) => defs[i + 1])],
      axes: [{}, { values: axisBits, size: 80 }],
      scales: { y: { range: yRange } },
      legend: { live: true },
    }, [data[0], ...order.map((i) => data[i + 1])], chartBox);
  }
  dirSelect.addEventListener("change", () => { if (last) drawChart(last); });
  window.addEventListener("resize", () => { if (plot) plot.setSize({ width: Math.max(280, chartBox.clientWidth), height: plot.height }); });

  // Routers by traffic over the range, with their status and current
  // rates from the fleet list.
  async function loadTraffic() {
    const current = ticket("traffic");
    const tb = document.querySelector("#routers-by-traffic tbody");
    try {
      const [fs, fleet] = await Promise.all([api("/fleet/traffic?range=" + state.range), api("/routers")]);
      if (!current()) return;
      drawChart(fs);
      const byID = new Map(fleet.map((r) => [r.id, r]));
      const rows = fs.routers.map((l) => ({ line: l, router: byID.get(l.id) }));
      // Routers without traffic in the range come last.
      fleet.forEach((r) => { if (!fs.routers.some((l) => l.id === r.id)) rows.push({ line: null, router: r }); });
      health.offline = fleet.filter((r) => r.status !== "online").length;
      health.routers = fleet.length;
      renderHealth();
      if (!rows.length) { emptyRow(tb, 6, "No routers yet: add one on the Fleet page."); return; }
      clear(tb);
      rows.forEach(({ line, router }) => {
        const name = router ? el("a", { href: "/routers/" + router.id + "?range=" + state.range, class: "router-link" }, router.name) : line.name;
        tb.append(el("tr", { dataset: { id: String(line ? line.id : router.id) } },
          el("td", null, name), el("td", null, router ? badge(router.status) : "—"),
          el("td", { class: "num" }, line ? bits(line.avg_bits_in) : "—"), el("td", { class: "num" }, line ? bits(line.avg_bits_out) : "—"),
          el("td", { class: "num" }, line ? bytes(line.bytes_in + line.bytes_out) : "—"),
          el("td", { class: "num opt" }, router ? bits(router.bits_in_per_sec) + " / " + bits(router.bits_out_per_sec) : "—")));
      });
    } catch (e) {
      if (!current()) return;
      if (plot) { plot.destroy(); plot = null; }
      clear(chartBox); chartBox.append(el("p", { class: "muted empty" }, "No chart for this view."));
      emptyRow(tb, 6, "—");
      problem(e.message);
    }
  }

  // Fleet-wide top lists (no router filter: every router).
  async function loadTop(table) {
    const dim = table.dataset.dim, tbody = table.tBodies[0];
    const current = ticket(table);
    try {
      const res = await api("/top/" + dim + "?range=" + state.range + "&limit=10");
      if (!current()) return;
      if (!table.tHead) {
        table.createTHead().append(el("tr", null, el("th", { class: "key" }), el("th", { class: "bar" }),
          el("th", { class: "num", title: "bytes × 8 over the time with data in this range" }, "Avg rate"), el("th", { class: "num" }, "Volume")));
      }
      if (!res.rows.length) { emptyRow(tbody, 4, "No traffic."); return; }
      clear(tbody);
      const max = res.rows[0].bytes || 1;
      res.rows.forEach((r) => {
        const bar = el("div", { class: "barfill" }); bar.style.width = Math.max(1, 100 * r.bytes / max) + "%";
        const name = r.name && r.name !== r.label ? r.name : "";
        // A subscriber's IPv4 and IPv6 rows carry the same name: the
        // family tells them apart even when the address is cut off.
        const fam = r.label.includes(":") ? "v6" : "v4";
        const key = dim === "local" && name
          ? el("td", { class: "key lead-name", title: r.label + " " + name }, el("span", { class: "name" }, name), " ",
            el("span", { class: "badge family", title: fam === "v6" ? "IPv6" : "IPv4" }, fam), " ", el("span", { class: "label" }, r.label))
          : el("td", { class: "key", title: r.label + (name ? " " + name : "") }, el("span", { class: "label" }, r.label), name ? " " : "", name ? el("span", { class: "name" }, name) : "");
        tbody.append(el("tr", { dataset: { key: r.key } }, key, el("td", { class: "bar" }, el("div", { class: "barwrap" }, bar)),
          el("td", { class: "num" }, bits(r.bytes * 8 / res.seconds)), el("td", { class: "num" }, bytes(r.bytes))));
      });
    } catch (e) {
      if (!current()) return;
      emptyRow(tbody, 4, "—");
      problem(e.message);
    }
  }

  // The health summary: each count links to where to act.
  const health = { alerts: null, offline: null, routers: null, coverage: null };
  function setCount(id, text, n) {
    const a = document.getElementById(id);
    a.textContent = text;
    a.dataset.count = n == null ? "" : String(n);
    a.className = n == null ? "" : n > 0 ? "bad" : "ok";
  }
  function renderHealth() {
    setCount("health-alerts", "Active alerts: " + (health.alerts == null ? "n/a" : health.alerts), health.alerts);
    setCount("health-offline", "Routers offline: " + (health.offline == null ? "…" : health.offline + " of " + health.routers), health.offline);
    setCount("health-coverage", "Coverage low: " + (health.coverage == null ? "n/a" : health.coverage), health.coverage);
  }
  async function loadHealth() {
    const [alerts, coverage] = await Promise.allSettled([api("/alerts?active=1"), api("/coverage")]);
    health.alerts = alerts.status === "fulfilled" ? alerts.value.length : null;
    health.coverage = coverage.status === "fulfilled" ? (coverage.value.routers || []).filter((r) => r.health === "low").length : null;
    renderHealth();
  }

  // refresh reloads everything; when all has answered, #main gets
  // data-loaded-ms (milliseconds since navigation), which tests wait for.
  const main = document.getElementById("main");
  function refresh() {
    history.replaceState(null, "", location.pathname + "?range=" + state.range);
    markRange(); clearProblems();
    delete main.dataset.loadedMs;
    const loads = [loadTraffic(), loadHealth()];
    document.querySelectorAll("table.top").forEach((t) => loads.push(loadTop(t)));
    Promise.allSettled(loads).then(() => { main.dataset.loadedMs = String(Math.round(performance.now())); });
  }
  refresh();
  setInterval(() => {
    if (!document.hidden && document.getElementById("auto-refresh").checked) refresh();
  }, 30000);
})();
