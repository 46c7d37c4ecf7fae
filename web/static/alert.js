// Alert page: one alert's facts and evidence, the target's traffic from
// 15 minutes before it started to 15 minutes after it ended (or now), the
// link to its flows, its mitigation audit log and its notifications.
"use strict";
(function () {
  const { api, el, bits, bytes, count, ago, when, shortWhen, badge, show, clear, emptyRow } = window.fb;
  const { lasted, target, direction, severity, isAddress, duration } = window.fbAlerts;
  const main = document.getElementById("main");
  const id = main.dataset.alertId;
  const errBox = document.getElementById("alert-error");
  const margin = 15 * 60e3;
  let cur = null;

  function iso(ms) { return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z"); }

  // window is the chart's range: 15 min around the alert, up to now.
  function span(a) {
    const start = Date.parse(a.started), now = Date.now();
    const end = a.ended ? Math.min(now, Date.parse(a.ended) + margin) : now;
    return { from: start - margin, to: Math.max(end, start - margin + 60e3) };
  }
  // scope filters the chart and the flows by the target (an address) on
  // the alert's router.
  function scope(a, q) {
    if (a.router_id) q.set("router", a.router_id);
    if (isAddress(a.target)) q.set("host", a.target);
    return q;
  }

  function renderFacts(a) {
    document.getElementById("alert-title").textContent = a.kind + " on " + target(a);
    document.title = "Alert " + a.id + ": " + a.kind + " on " + a.target + " · flowbox";
    const b = document.getElementById("alert-badges");
    clear(b);
    b.append(severity(a), " ", a.ended ? badge("resolved", "ok") : badge("active", "error"));
    document.getElementById("alert-summary").textContent = a.summary || "";
    const ackBtn = document.getElementById("ack"), acked = document.getElementById("acked");
    show(ackBtn, !a.acked_by && !a.ended);
    acked.textContent = a.acked_by ? "acknowledged by " + a.acked_by + " " + ago(a.acked_at) : "";
    acked.title = a.acked_by ? when(a.acked_at) : "";

    const tb = document.querySelector("#alert-facts tbody");
    clear(tb);
    const kv = (k, v, title) => tb.append(el("tr", null, el("th", null, k), el("td", title ? { title } : null, v)));
    kv("Router", a.router_id ? el("a", { href: "/routers/" + a.router_id }, a.router) : a.router || "—");
    kv("Target", a.target);
    if (a.subscriber) kv("Subscriber", a.subscriber);
    kv("Direction", direction(a) + (a.direction === "in" ? " (an attack on the target)" : a.direction === "out" ? " (abuse by the target)" : ""));
    kv("Started", when(a.started));
    kv(a.ended ? "Ended" : "Status", a.ended ? when(a.ended) : "active, last evaluated " + ago(a.updated), a.ended ? null : when(a.updated));
    kv("Duration", lasted(a));
    if (a.peak_bps > 0) kv("Peak bit rate", bits(a.peak_bps));
    if (a.peak_pps > 0) kv("Peak packet rate", count(a.peak_pps) + " pkt/s");
    if (a.peak_flows_per_s > 0) kv("Peak flow rate", count(a.peak_flows_per_s) + " flows/s");
    kv("Peak at", when(a.peak_at));

    const flows = scope(a, new URLSearchParams());
    flows.set("from", iso(Date.parse(a.started)));
    flows.set("to", iso(a.ended ? Date.parse(a.ended) : Date.now()));
    document.getElementById("flows-link").href = "/flows?" + flows.toString();
  }

  // measure writes one of the detector's numbers by its name's unit.
  function measure(name, v) {
    if (/_bps$/.test(name)) return bits(v);
    if (/_pps$/.test(name)) return count(v) + " pkt/s";
    if (/_fps$|flows_per_s$/.test(name)) return count(v) + " flows/s";
    if (/_share$|_ratio$/.test(name)) return (v * 100).toFixed(1) + " %";
    if (/_bytes$/.test(name)) return bytes(v);
    return Number.isInteger(v) ? v.toLocaleString() : Number(v.toFixed(3)).toLocaleString();
  }
  function renderEvidence(a) {
    const ev = a.evidence || {};
    const tb = document.querySelector("#measures tbody");
    clear(tb);
    const names = Object.keys(ev.measures || {}).sort();
    if (!names.length) emptyRow(tb, 2, "No measure recorded.");
    names.forEach((k) => tb.append(el("tr", { dataset: { measure: k } }, el("th", null, k.replace(/_/g, " ")), el("td", { class: "num" }, measure(k, ev.measures[k])))));
    const out = a.direction === "out";
    document.getElementById("sources-title").textContent = out ? "Top destinations at the peak" : "Top sources at the peak";
    document.getElementById("ports-title").textContent = out ? "Top destination ports at the peak" : a.direction === "in" ? "Top source ports at the peak" : "Top ports at the peak";
    [["#top-sources", ev.top_sources], ["#top-ports", ev.top_ports]].forEach(([sel, rows]) => {
      const body = document.querySelector(sel + " tbody");
      if (!rows || !rows.length) { emptyRow(body, 4, "None recorded."); return; }
      clear(body);
      rows.forEach((r) => body.append(el("tr", { dataset: { key: r.key } }, el("td", null, r.key),
        el("td", { class: "num" }, bytes(r.bytes)), el("td", { class: "num" }, count(r.packets)), el("td", { class: "num" }, count(r.flows)))));
    });
  }

  function renderLogs(d) {
    const mb = document.querySelector("#mitigation-log tbody");
    if (!d.mitigation.length) emptyRow(mb, 7, "No mitigation for this alert.");
    else {
      clear(mb);
      d.mitigation.forEach((m) => {
        const ok = m.result === "ok", skipped = m.result.startsWith("skipped");
        mb.append(el("tr", null, el("td", { title: when(m.at) }, shortWhen(m.at)), el("td", null, m.router),
          el("td", null, m.action, m.dry_run ? el("span", null, " ", badge("dry run", "waiting")) : null), el("td", null, m.address),
          el("td", null, m.kind + (m.list ? " " + m.list : "")), el("td", null, m.timeout_ns ? duration(m.timeout_ns / 1e9) : "—"),
          el("td", { class: "wrap" }, badge(ok ? "ok" : skipped ? "skipped" : "error", ok ? "ok" : skipped ? "waiting" : "error"), ok ? "" : " " + m.result)));
      });
    }
    const nb = document.querySelector("#notification-log tbody");
    if (!d.notifications.length) { emptyRow(nb, 5, "No notification for this alert."); return; }
    clear(nb);
    d.notifications.forEach((n) => nb.append(el("tr", null, el("td", { title: when(n.at) }, shortWhen(n.at)), el("td", null, n.channel),
      el("td", null, n.event), el("td", { class: "num" }, String(n.attempt)),
      el("td", { class: "wrap" }, badge(n.ok ? "ok" : "error"), n.ok ? "" : " " + (n.error || "")))));
  }

  // The chart: the time series API, filtered by the target, drawn like the
  // router page's, with the alert's start and end marked.
  let plot = null;
  const chartBox = document.getElementById("chart");
  // settled hides the buckets whose value is not known yet (see router.js).
  function settled(series, values) {
    const lag = series.resolution === "raw" ? 0 : 60;
    return values.map((v, i) => {
      const end = series.times[i] + series.step;
      if (end > series.now || (v === 0 && end > series.now - lag)) return null;
      return v;
    });
  }
  function markers(u) {
    const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
    ctx.save();
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.setLineDash([6, 4]);
    [[cur.started, "#c62828"], [cur.ended, "#1a7f37"]].forEach(([t, color]) => {
      if (!t) return;
      const x = u.valToPos(Date.parse(t) / 1000, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      ctx.strokeStyle = color;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
    });
    ctx.restore();
  }
  async function loadChart() {
    const s = span(cur);
    const q = scope(cur, new URLSearchParams());
    q.set("from", iso(s.from)); q.set("to", iso(s.to));
    const note = document.getElementById("chart-note");
    try {
      const series = await api("/traffic?" + q.toString());
      const inLabel = cur.direction ? "To the target" : "In", outLabel = cur.direction ? "From the target" : "Out";
      const width = Math.max(280, chartBox.clientWidth);
      const opts = {
        width, height: width < 600 ? 220 : 300,
        series: [{},
          { label: inLabel, stroke: "#1f6feb", fill: "rgba(31,111,235,0.12)", width: 1.5, value: (u, v) => v == null ? "—" : bits(v) },
          { label: outLabel, stroke: "#e8590c", fill: "rgba(232,89,12,0.10)", width: 1.5, value: (u, v) => v == null ? "—" : bits(v) }],
        axes: [{}, { values: (u, vals) => vals.map((v) => bits(v)), size: 80 }],
        scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        legend: { live: true },
        hooks: { draw: [markers] },
      };
      const data = [series.times, settled(series, series.bits_in), settled(series, series.bits_out)];
      if (plot) plot.destroy();
      clear(chartBox);
      plot = new uPlot(opts, data, chartBox);
      chartBox.dataset.points = String(data[1].concat(data[2]).filter((v) => v > 0).length);
      note.textContent = (isAddress(cur.target) ? cur.target : "the router") + ", average per " +
        (series.step >= 3600 ? series.step / 3600 + " h" : series.step / 60 + " min") + "; dashed lines: start and end";
    } catch (e) {
      if (plot) { plot.destroy(); plot = null; }
      clear(chartBox); chartBox.append(el("p", { class: "muted empty" }, "No chart: " + e.message));
      chartBox.dataset.points = "0";
    }
  }
  window.addEventListener("resize", () => { if (plot) plot.setSize({ width: Math.max(280, chartBox.clientWidth), height: plot.height }); });

  async function load() {
    try {
      const d = await api("/alerts/" + id);
      cur = d.alert;
      show(errBox, false);
      renderFacts(cur); renderEvidence(cur); renderLogs(d);
      await loadChart();
    } catch (e) {
      errBox.textContent = "Cannot load the alert: " + e.message; show(errBox, true);
    }
  }

  document.getElementById("ack").addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    try {
      cur = await api("/alerts/" + id + "/ack", { method: "POST" });
      renderFacts(cur);
    } catch (e) {
      errBox.textContent = "Cannot acknowledge: " + e.message; show(errBox, true);
    }
    ev.target.disabled = false;
  });

  // #main gets data-loaded-ms once the alert and its chart are shown.
  load().then(() => { main.dataset.loadedMs = String(Math.round(performance.now())); });
  setInterval(() => { if (!document.hidden && cur && !cur.ended) load(); }, 15000);
})();
