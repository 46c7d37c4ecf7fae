// Router page: traffic chart, top-N tables that filter the page on click,
// provisioning history and collector counters.
"use strict";
(function () {
  const { api, el, bits, bytes, count, ago, when, shortWhen, badge, show, clear, emptyRow, localInput } = window.fb;
  const id = document.getElementById("main").dataset.routerId;
  const filterKeys = ["host", "local", "remote", "as", "app", "port", "proto", "country", "domain", "subscriber", "iface"];
  const filterNames = { host: "host", local: "local host", remote: "remote host", as: "AS", app: "application",
    port: "port", proto: "protocol", country: "country", domain: "domain", subscriber: "subscriber", iface: "interface" };

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
    document.getElementById("flows-link").href = "/flows?" + query().toString();
  }

  // Problems of the current view (such as a filter over a range beyond the
  // raw window) are said once, above the charts, not in every table.
  const notice = document.getElementById("page-notice");
  const problems = new Set();
  function problem(msg) {
    problems.add(msg);
    notice.textContent = [...problems].join(" ");
    show(notice, true);
  }
  function clearProblems() { problems.clear(); show(notice, false); }

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
  // filterFor turns a clicked top-N row into filters: a host, an AS, an
  // application or a protocol and port, a country, a conversation (its
  // local and remote host together), an interface.
  function filterFor(dim, key) {
    switch (dim) {
      case "local": case "remote": return { host: key };
      case "as": return { as: key };
      case "proto": return { proto: key };
      case "interface": return { iface: key };
      case "country": return { country: key };
      case "domain": return { domain: key };
      case "port": {
        const m = /^([\w-]+)\/(\d+)$/.exec(key);
        return m ? { proto: m[1], port: m[2] } : { app: key };
      }
      case "conversation": { const [l, r] = key.split("|"); return { local: l, remote: r }; }
    }
    return {};
  }

  // Traffic chart.
  let plot = null;
  const chartBox = document.getElementById("chart");
  const colors = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e03131", "#5c940d", "#364fc7", "#862e9c"];
  const { settled, axisBits, yRange, sinceText, stepText } = window.fbChart;

  // counterLine averages the interface counters (everything the router
  // received, bits per second per minute or hour) over the chart's
  // buckets; null where no counter minute falls.
  function counterLine(series, counters) {
    const out = series.times.map(() => null), sums = series.times.map(() => 0), ns = series.times.map(() => 0);
    let j = 0;
    counters.times.forEach((t, k) => {
      while (j < series.times.length - 1 && t >= series.times[j] + series.step) j++;
      if (t >= series.times[j] && t < series.times[j] + series.step) { sums[j] += counters.rx_bps[k]; ns[j]++; }
    });
    for (let i = 0; i < out.length; i++) if (ns[i]) out[i] = sums[i] / ns[i];
    return out;
  }

  function drawChart(series, counters, more) {
    const mode = document.getElementById("chart-mode").value;
    const data = [series.times];
    const defs = [{}];
    if (mode === "interfaces" && series.interfaces) {
      series.interfaces.slice(0, 8).forEach((s, i) => {
        data.push(settled(series, s.bits_in)); defs.push({ label: s.name + " in", stroke: colors[i % colors.length], width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
        data.push(settled(series, s.bits_out)); defs.push({ label: s.name + " out", stroke: colors[i % colors.length], dash: [5, 4], width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
      });
    } else {
      data.push(settled(series, series.bits_in)); defs.push({ label: "In (download)", stroke: "#1f6feb", fill: "rgba(31,111,235,0.12)", width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
      data.push(settled(series, series.bits_out)); defs.push({ label: "Out (upload)", stroke: "#e8590c", fill: "rgba(232,89,12,0.10)", width: 1.5, value: (u, v) => v == null ? "—" : bits(v) });
    }
    delete chartBox.dataset.counters;
    if (counters && counters.times.length && data[0].length) {
      const line = counterLine(series, counters);
      data.push(line);
      defs.push({ label: "Interface counters (all received)", stroke: "#6e7781", dash: [4, 4], width: 1.5, spanGaps: true, value: (u, v) => v == null ? "—" : bits(v) });
      chartBox.dataset.counters = String(line.filter((v) => v != null).length);
    }
    let points = 0;
    for (let i = 1; i < data.length; i++) points += data[i].filter((v) => v > 0).length;
    chartBox.dataset.points = String(points);
    chartBox.dataset.length = String(data[0].length);
    chartBox.dataset.since = series.since ? String(series.since) : "";
    const since = series.since ? "collecting since " + sinceText(series.since) + " · " : "";
    const note = document.getElementById("chart-note");
    note.textContent = since + "average per " + stepText(series.step) +
      (chartBox.dataset.counters ? " · dashed: the router's interface counters, everything its interfaces received (compare with in + out)" : "");
    note.classList.toggle("warning", !!series.partial);
    if (series.partial) note.textContent += " · " + series.note + (more ? " (scanning the rest…)" : "");
    if (plot) { plot.destroy(); plot = null; }
    clear(chartBox);
    if (!points) {
      // No fake axis: say what is known instead.
      chartBox.append(el("p", { class: "muted empty", id: "chart-empty" }, series.since
        ? "Collecting since " + sinceText(series.since) + ": the chart draws each minute once it is written (within a minute)."
        : "No traffic in this range."));
      return;
    }
    const width = Math.max(280, chartBox.clientWidth);
    const opts = {
      width, height: width < 600 ? 220 : 300,
      series: defs,
      axes: [{}, { values: axisBits, size: 80 }],
      scales: { y: { range: yRange } },
      legend: { live: true },
    };
    plot = new uPlot(opts, data, chartBox);
  }
  window.addEventListener("resize", () => { if (plot) plot.setSize({ width: Math.max(280, chartBox.clientWidth), height: plot.height }); });
  document.getElementById("chart-mode").addEventListener("change", loadTraffic);

  // Every load takes a ticket; an answer that arrives after a newer
  // request was sent (a click while the page was still loading) is
  // dropped, so a slow unfiltered answer never overwrites a filtered one.
  const tickets = new Map();
  function ticket(key) { const n = (tickets.get(key) || 0) + 1; tickets.set(key, n); return () => tickets.get(key) === n; }

  // The counter overlay needs the whole router (no filter) over a preset
  // range, in the totals view.
  const counterSince = { "1h": "1h", "6h": "6h", "24h": "24h", "7d": "168h", "30d": "720h" };
  async function loadTraffic() {
    const totals = document.getElementById("chart-mode").value !== "interfaces";
    const extra = totals ? {} : { interfaces: "true" };
    const current = ticket("chart");
    const overlay = totals && counterSince[state.range] && !Object.keys(state.filters).length;
    try {
      const counters = overlay ? api("/coverage/counters?router=" + id + "&since=" + counterSince[state.range]).catch(() => null) : null;
      await progressive("/traffic", extra, current, chartBox, async (series, more) => drawChart(series, await counters, more));
    } catch (e) {
      if (!current()) return;
      if (plot) { plot.destroy(); plot = null; }
      clear(chartBox); chartBox.append(el("p", { class: "muted empty" }, "No chart for this view."));
      chartBox.dataset.points = "0"; chartBox.dataset.length = "0";
      problem(e.message);
    }
  }

  // keyCell shows a row's label and its name: "AS15169 Google LLC",
  // "tcp/443", "Maria Garcia 100.64.1.7" (subscribers lead), "US United
  // States".
  // family tags an address "v6" or "v4" (nothing for other labels).
  function family(label) {
    const v6 = label.includes(":"), v4 = /^\d+\.\d+\.\d+\.\d+$/.test(label);
    if (!v6 && !v4) return "";
    return el("span", { class: "badge family", title: v6 ? "IPv6" : "IPv4" }, v6 ? "v6" : "v4");
  }
  const regions = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "region" }) : null;
  function keyCell(dim, r) {
    let name = r.name && r.name !== r.label ? r.name : "";
    if (!name && dim === "country" && regions && /^[A-Z]{2}$/.test(r.label)) {
      try { name = regions.of(r.label); } catch (e) { name = ""; }
      if (name === r.label) name = "";
    }
    const label = el("span", { class: "label" }, r.label);
    if (!name) return el("td", { class: "key", title: r.label }, label);
    const nm = el("span", { class: "name" }, name);
    const title = r.label + " " + name;
    if (r.router) {
      // One of a router's own addresses: its name, marked as a router's.
      return el("td", { class: "key lead-name", title: r.label + " " + name + " (router)" }, nm, " ", el("span", { class: "badge" }, "router"), " ", label);
    }
    if (r.reverse) {
      // A reverse DNS name: what the address calls itself, not a name a
      // customer looked up.
      return el("td", { class: "key lead-name", title: title + " (reverse DNS, not a visited name)" }, nm, " ",
        el("span", { class: "badge", title: "reverse DNS: not a name a customer looked up" }, "rDNS"), " ", label);
    }
    // A subscriber's IPv4 and IPv6 rows carry the same name: the family
    // tells them apart even when the address is cut off.
    if (dim === "local" || dim === "remote") return el("td", { class: "key lead-name", title }, nm, " ", dim === "local" ? family(r.label) : "", " ", label);
    return el("td", { class: "key", title }, label, " ", nm);
  }

  // topHead names the columns of a top table: the rate is an average over
  // the time with data (res.seconds: from the first minute of traffic
  // when the router is newer than the range), the volume a sum.
  function topHead(table, res) {
    if (!table.tHead) table.createTHead();
    clear(table.tHead);
    const hours = res.seconds / 3600;
    const over = hours >= 48 ? Math.round(hours / 24) + " d" : hours >= 1 ? (Math.round(hours * 10) / 10) + " h" : Math.round(res.seconds / 60) + " min";
    table.tHead.append(el("tr", null, el("th", { class: "key" }), el("th", { class: "bar" }),
      el("th", { class: "num", title: "bytes × 8 over the " + over + " with data in this range" }, "Avg rate"),
      el("th", { class: "num", title: "bytes in this range" }, "Volume")));
  }

  // progressive asks a view that may scan raw flows (a filter the rollups
  // cannot answer) quickly first: quick=1 bounds the scan to 2 s and
  // answers its newest part, marked partial, which is drawn with its note
  // at once; then the whole answer replaces it. box.dataset.passes records
  // what was drawn ("full", or "partial full").
  async function progressive(path, params, current, box, draw) {
    let res = await api(path + "?" + query(Object.assign({ quick: "1" }, params)));
    if (!current()) return;
    box.dataset.passes = res.partial ? "partial" : "full";
    await draw(res, !!res.partial);
    if (!res.partial) return;
    res = await api(path + "?" + query(params));
    if (!current()) return;
    box.dataset.passes += res.partial ? " partial" : " full";
    await draw(res, false);
  }

  // Top-N tables.
  async function loadTop(table) {
    const current = ticket(table);
    try {
      await progressive("/top/" + table.dataset.dim, { limit: 10 }, current, table, (res, more) => drawTop(table, res, more));
    } catch (e) {
      if (!current()) return;
      emptyRow(table.tBodies[0], 4, "—");
      problem(e.message);
    }
  }
  function drawTop(table, res, more) {
    const dim = table.dataset.dim;
    const tbody = table.tBodies[0];
    if (!res.rows.length) { emptyRow(tbody, 4, more ? "No traffic in the newest part yet (scanning the rest…)" : "No traffic."); return; }
    clear(tbody);
    topHead(table, res);
    const max = res.rows[0].bytes || 1;
    res.rows.forEach((r) => {
      const name = keyCell(dim, r);
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
    if (res.partial) {
      // The raw scan ran out of time: the table covers the newest part
      // of the range only, and says so.
      tbody.append(el("tr", { class: "partial" }, el("td", { colspan: "4", class: "muted note warning" }, res.note + (more ? " (scanning the rest…)" : ""))));
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
      if (r.status === "online" && r.flows_per_sec === 0) {
        // Rates come from the minute rollups, which lag the first flows.
        kv("Flows/s, in / out (5 min)", "measured within a minute of the first flows");
      } else {
        kv("Flows/s (5 min)", r.flows_per_sec.toFixed(2));
        kv("In / out (5 min)", bits(r.bits_in_per_sec) + " / " + bits(r.bits_out_per_sec));
      }
      kv("Estimated lost flows", count(r.lost_flows));
      kv("Templates", r.template_state + (r.templates ? " (" + r.templates + ")" : ""));
      r.exporters.forEach((x) => {
        kv("Exporter " + x.exporter, count(x.packets) + " packets, " + count(x.flows_received) + " flows");
        const drops = Object.entries(x.flows_dropped).concat(Object.entries(x.decode_errors)).filter(([, v]) => v > 0);
        kv("Drops and decode errors", drops.length ? drops.map(([k, v]) => k.replace(/_/g, " ") + ": " + count(v)).join(", ") : "none");
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
      runs.forEach((r) => tb.append(el("tr", null, el("td", { title: when(r.time) }, shortWhen(r.time)), el("td", null, r.action),
        el("td", null, badge(r.ok ? "ok" : "error")), el("td", { class: "wrap", title: (r.changes || []).join("\n") }, r.summary || r.error || ""))));
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
        plan.changes.forEach((c) => {
          const none = c.old === "" || c.old === "(none)";
          tb.append(el("tr", { class: c.skip ? "skip" : "" }, el("td", null, c.path),
            el("td", { class: none ? "old none" : "old" }, none ? "—" : c.old), el("td", { class: "new" }, c.skip ? "already set" : c.new)));
        });
        if (!plan.changes.length) tb.append(el("tr", null, el("td", { colspan: 3, class: "muted" }, "Nothing to change: the router is configured.")));
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

  // Removing the router: optionally undo first, then back to the fleet.
  const removeForm = document.getElementById("remove-form");
  document.getElementById("btn-remove").addEventListener("click", () => removeForm.classList.remove("hidden"));
  document.getElementById("remove-cancel").addEventListener("click", () => removeForm.classList.add("hidden"));
  removeForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const undo = document.getElementById("remove-undo").checked;
    const btn = document.getElementById("remove-confirm");
    btn.disabled = true;
    clear(out); out.append(el("p", { class: "muted" }, undo ? "undoing and removing…" : "removing…"));
    try {
      await api("/routers/" + id + "?undo=" + undo, { method: "DELETE" });
      location.href = "/fleet?removed=" + encodeURIComponent(document.getElementById("router-name").textContent);
    } catch (e) {
      btn.disabled = false;
      clear(out); out.append(el("p", { class: "error", role: "alert" }, "Cannot remove the router: " + e.message +
        (undo ? " (uncheck the undo box to remove it without touching the router)" : "")));
    }
  });

  // loadDomainStatus says, above the Domains table, where the names come
  // from: this router's DNS cache (with its last read), or why domains are
  // missing (the router is not its customers' resolver, reads fail).
  const domainsNote = document.getElementById("domains-note");
  async function loadDomainStatus() {
    let st;
    try { st = await api("/domains/status"); } catch (e) {
      domainsNote.textContent = "Domains are not read on this server: " + e.message;
      domainsNote.dataset.resolver = "off";
      return;
    }
    const r = (st || []).find((x) => String(x.router_id) === String(id));
    domainsNote.classList.remove("warning");
    if (!r) { domainsNote.textContent = "This router's DNS cache has not been read yet."; domainsNote.dataset.resolver = "unknown"; return; }
    domainsNote.dataset.resolver = r.resolver;
    if (r.warning) {
      domainsNote.classList.add("warning");
      domainsNote.textContent = r.warning;
      return;
    }
    let msg = "Names from this router's DNS cache";
    if (r.polls) msg += ": " + count(r.names) + " addresses named at the last read, " + ago(r.last_poll);
    if (r.last_error) msg += " · last read failed: " + r.last_error;
    domainsNote.textContent = msg + ".";
  }

  // refresh reloads the whole page's data; when everything has answered,
  // #main gets data-loaded-ms (milliseconds since navigation), which tests
  // and benchmarks wait for.
  const main = document.getElementById("main");
  function refresh() {
    saveURL(); markRange(); renderFilters(); clearProblems();
    delete main.dataset.loadedMs;
    const loads = [loadRouter(), loadTraffic(), loadHistory(), loadDomainStatus()];
    document.querySelectorAll("table.top").forEach((t) => loads.push(loadTop(t)));
    Promise.allSettled(loads).then(() => { main.dataset.loadedMs = String(Math.round(performance.now())); });
  }

  refresh();
  setInterval(() => {
    if (!document.hidden && document.getElementById("auto-refresh").checked && state.range !== "custom") {
      clearProblems();
      loadRouter(); loadTraffic(); document.querySelectorAll("table.top").forEach(loadTop);
    }
  }, 30000);
})();
