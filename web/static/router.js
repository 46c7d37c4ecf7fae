// Router page: traffic chart, top-N tables that filter the page on click,
// provisioning history and collector counters.
"use strict";
(function () {
  const { api, el, bits, bytes, count, ago, when, badge, show, clear, emptyRow, localInput } = window.fb;
  const id = document.getElementById("main").dataset.routerId;
  const filterKeys = ["host", "as", "port", "proto", "iface"];
  const filterNames = { host: "host", as: "AS", port: "port", proto: "protocol", iface: "interface" };

  // State lives in the URL so that a filtered view can be bookmarked.
  const state = { range: "24h", from: "", to: "", filters: {} };
  (function fromURL() {
    const q = new URLSearchParams(location.search);
    if (q.get("from") && q.get("to")) { state.range = "custom"; state.from = q.get("from"); state.to = q.get("to"); }
    else if (q.get("range")) state.range = q.get("range");
    filterKeys.forEach((k) => { if (q.get(k)) state.filters[k] = q.get(k); });
  })();

  function query(extra) {
    const q = new URLSearchParams();
    q.set("router", id);
    if (state.range === "custom") { q.set("from", state.from); q.set("to", state.to); }
    else q.set("range", state.range);
    for (const k in state.filters) q.set(k, state.filters[k]);
    for (const k in extra || {}) q.set(k, extra[k]);
    return q;
  }
  function saveURL() {
    const q = query(); q.delete("router");
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }

  // Range picker.
  const rangeButtons = document.querySelectorAll("#ranges button");
  const customForm = document.getElementById("custom-range");
  function markRange() {
    rangeButtons.forEach((b) => b.classList.toggle("active", b.dataset.range === state.range));
    show(customForm, state.range === "custom");
  }
  rangeButtons.forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.range === "custom") {
      const to = new Date(), from = new Date(to - 24 * 3600e3);
      document.getElementById("custom-from").value = localInput(from);
      document.getElementById("custom-to").value = localInput(to);
      state.range = "custom"; markRange(); return;
    }
    state.range = b.dataset.range; markRange(); refresh();
  }));
  customForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.from = new Date(document.getElementById("custom-from").value).toISOString().replace(/\.\d+Z$/, "Z");
    state.to = new Date(document.getElementById("custom-to").value).toISOString().replace(/\.\d+Z$/, "Z");
    refresh();
  });

  // Filter chips.
  function renderFilters() {
    const box = document.getElementById("filters");
    clear(box);
    for (const k in state.filters) {
      box.append(el("span", { class: "chip", dataset: { filter: k } }, filterNames[k] + " = " + state.filters[k],
        el("button", { type: "button", title: "remove this filter", "aria-label": "remove filter " + k,
          onclick: () => { delete state.filters[k]; refresh(); } }, "×")));
    }
  }
  // filterFor turns a clicked top-N row into filters (the store filters
  // by host, AS, port, protocol and interface).
  function filterFor(dim, key) {
    switch (dim) {
      case "local": case "remote": return { host: key };
      case "as": return { as: key };
      case "proto": return { proto: key };
      case "interface": return { iface: key };
      case "port": { const [p, n] = key.split("/"); return { proto: p, port: n }; }
      case "conversation": { const [l] = key.split("|"); return { host: l }; }
    }
    return {};
  }

  // Traffic chart.
  let plot = null;
  const chartBox = document.getElementById("chart");
  const colors = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e03131", "#5c940d", "#364fc7", "#862e9c"];
  function drawChart(series) {
    const mode = document.getElementById("chart-mode").value;
    const data = [series.times];
    const defs = [{}];
    if (mode === "interfaces" && series.interfaces) {
      series.interfaces.slice(0, 8).forEach((s, i) => {
        data.push(s.bits_in); defs.push({ label: s.name + " in", stroke: colors[i % colors.length], width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
        data.push(s.bits_out); defs.push({ label: s.name + " out", stroke: colors[i % colors.length], dash: [5, 4], width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
      });
    } else {
      data.push(series.bits_in); defs.push({ label: "In (download)", stroke: "#1f6feb", fill: "rgba(31,111,235,0.12)", width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
      data.push(series.bits_out); defs.push({ label: "Out (upload)", stroke: "#e8590c", fill: "rgba(232,89,12,0.10)", width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
    }
    const width = Math.max(280, chartBox.clientWidth);
    const opts = {
      width, height: width < 600 ? 220 : 300,
      series: defs,
      axes: [{}, { values: (u, vals) => vals.map((v) => bits(v)), size: 80 }],
      scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { live: true },
    };
    if (plot) plot.destroy();
    clear(chartBox);
    plot = new uPlot(opts, data, chartBox);
    let points = 0;
    for (let i = 1; i < data.length; i++) points += data[i].filter((v) => v > 0).length;
    chartBox.dataset.points = String(points);
    document.getElementById("chart-note").textContent = "average per " + (series.step >= 3600 ? series.step / 3600 + " h" : series.step / 60 + " min");
  }
  window.addEventListener("resize", () => { if (plot) plot.setSize({ width: Math.max(280, chartBox.clientWidth), height: plot.height }); });
  document.getElementById("chart-mode").addEventListener("change", loadTraffic);

  async function loadTraffic() {
    const extra = document.getElementById("chart-mode").value === "interfaces" ? { interfaces: "true" } : {};
    try {
      drawChart(await api("/traffic?" + query(extra)));
    } catch (e) {
      clear(chartBox); chartBox.append(el("p", { class: "error" }, "Cannot load traffic: " + e.message));
    }
  }

  // Top-N tables.
  async function loadTop(table) {
    const dim = table.dataset.dim;
    const tbody = table.tBodies[0];
    try {
      const res = await api("/top/" + dim + "?" + query({ limit: 10 }));
      if (!res.rows.length) { emptyRow(tbody, 4, "No traffic."); return; }
      clear(tbody);
      const max = res.rows[0].bytes || 1;
      res.rows.forEach((r) => {
        const name = el("td", { class: "key" }, r.name && r.name !== r.label ? el("span", null, r.name, " ", el("span", { class: "muted" }, r.label)) : r.label);
        const bar = el("div", { class: "barfill" }); bar.style.width = Math.max(1, 100 * r.bytes / max) + "%";
        const attrs = { dataset: { key: r.key } };
        if (r.key) {
          attrs.class = "click"; attrs.title = "filter the page by this";
          attrs.onclick = () => { Object.assign(state.filters, filterFor(dim, r.key)); refresh(); };
        }
        tbody.append(el("tr", attrs,
          name, el("td", { class: "bar" }, el("div", { class: "barwrap" }, bar)),
          el("td", { class: "num" }, bits(r.bytes * 8 / res.seconds)), el("td", { class: "num" }, bytes(r.bytes))));
      });
      if (res.other.bytes > 0) {
        tbody.append(el("tr", { class: "other" }, el("td", { class: "muted" }, "other"), el("td"),
          el("td", { class: "num muted" }, bits(res.other.bytes * 8 / res.seconds)), el("td", { class: "num muted" }, bytes(res.other.bytes))));
      }
    } catch (e) {
      emptyRow(tbody, 4, "Cannot load: " + e.message);
    }
  }
  // Router header and counters.
  async function loadRouter() {
    try {
      const r = await api("/routers/" + id);
      document.getElementById("router-name").textContent = r.name;
      const st = document.getElementById("router-status");
      st.textContent = r.status; st.className = "badge " + r.status;
      document.getElementById("router-meta").textContent = [r.identity, r.model, r.version && "RouterOS " + r.version, r.address].filter(Boolean).join(" · ");
      const tb = document.querySelector("#counters tbody");
      clear(tb);
      const kv = (k, v) => tb.append(el("tr", null, el("th", null, k), el("td", { class: "num" }, v)));
      kv("Status", r.status);
      kv("Provisioning", r.state + (r.state_detail ? " (" + r.state_detail + ")" : ""));
      kv("Last flow", ago(r.last_flow));
      kv("Flows/s (5 min)", r.flows_per_sec.toFixed(2));
      kv("In / out (5 min)", bits(r.bits_in_per_sec) + " / " + bits(r.bits_out_per_sec));
      kv("Estimated lost flows", String(r.lost_flows));
      kv("Templates", r.template_state + (r.templates ? " (" + r.templates + ")" : ""));
      r.exporters.forEach((x) => {
        kv("Exporter " + x.exporter, count(x.packets) + " packets, " + count(x.flows_received) + " flows");
        const drops = Object.entries(x.flows_dropped).concat(Object.entries(x.decode_errors));
        if (drops.length) kv("  drops / errors", drops.map(([k, v]) => k + ": " + v).join(", "));
      });
    } catch (e) {
      document.getElementById("router-meta").textContent = "Cannot load the router: " + e.message;
    }
  }

  async function loadHistory() {
    const tb = document.querySelector("#history tbody");
    try {
      const runs = await api("/routers/" + id + "/history?limit=20");
      if (!runs.length) { emptyRow(tb, 4, "No provisioning yet."); return; }
      clear(tb);
      runs.forEach((r) => tb.append(el("tr", null, el("td", null, when(r.time)), el("td", null, r.action),
        el("td", null, badge(r.ok ? "ok" : "error")), el("td", { title: (r.changes || []).join("\n") }, r.summary || r.error || ""))));
    } catch (e) {
      emptyRow(tb, 4, "Cannot load: " + e.message);
    }
  }

  // Provisioning buttons.
  const out = document.getElementById("prov-out");
  async function provision(action) {
    clear(out); out.append(el("p", { class: "muted" }, action + "…"));
    try {
      if (action === "plan") {
        const plan = await api("/routers/" + id + "/plan");
        clear(out);
        out.append(el("p", null, plan.summary || ""));
        const tb = el("tbody");
        plan.changes.forEach((c) => tb.append(el("tr", { class: c.skip ? "skip" : "" }, el("td", null, c.path),
          el("td", { class: "old" }, c.old || "—"), el("td", { class: "new" }, c.skip ? "already set" : c.new))));
        out.append(el("div", { class: "scroll" }, el("table", { class: "data diff" }, tb)));
      } else {
        if (action === "undo" && !confirm("Remove flowbox's traffic-flow settings from this router?")) { clear(out); return; }
        const run = await api("/routers/" + id + "/" + action, { method: "POST" });
        clear(out);
        out.append(el("p", null, badge(run.ok ? "ok" : "error"), " " + action + ": " + (run.summary || run.error || "")));
      }
    } catch (e) {
      clear(out); out.append(el("p", { class: "error" }, action + " failed: " + e.message));
    }
    loadHistory(); loadRouter();
  }
  ["plan", "apply", "verify", "undo"].forEach((a) => document.getElementById("btn-" + a).addEventListener("click", () => provision(a)));

  function refresh() {
    saveURL(); markRange(); renderFilters();
    loadRouter(); loadTraffic(); loadHistory();
    document.querySelectorAll("table.top").forEach(loadTop);
  }

  refresh();
  setInterval(() => {
    if (!document.hidden && document.getElementById("auto-refresh").checked && state.range !== "custom") {
      loadRouter(); loadTraffic(); document.querySelectorAll("table.top").forEach(loadTop);
    }
  }, 30000);
})();
