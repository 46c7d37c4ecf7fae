// Subscribers page: the traffic of every subscriber over a period (usage
// report), sortable and paged, with a per-subscriber chart.
"use strict";
(function () {
  const { api, el, bytes, when, shortWhen, show, clear, emptyRow } = window.fb;
  const pageSize = 100;
  const periods = ["today", "yesterday", "7d", "30d", "month", "lastmonth", "custom"];
  const sorts = ["total", "download", "upload", "name"];

  // State lives in the URL so that a reload keeps the view. Custom dates
  // are local calendar dates (YYYY-MM-DD), the end date included.
  const state = { period: "30d", from: "", to: "", router: "", search: "", sort: "total", offset: 0 };
  (function fromURL() {
    const q = new URLSearchParams(location.search);
    if (periods.includes(q.get("period"))) state.period = q.get("period");
    if (state.period === "custom") {
      state.from = q.get("from") || ""; state.to = q.get("to") || "";
      if (!isDate(state.from) || !isDate(state.to)) state.period = "30d";
    }
    state.router = q.get("router") || "";
    state.search = q.get("search") || "";
    if (sorts.includes(q.get("sort"))) state.sort = q.get("sort");
    state.offset = Math.max(0, parseInt(q.get("offset"), 10) || 0);
  })();

  function isDate(s) { return /^\d{4}-\d{2}-\d{2}$/.test(s) && !isNaN(dateOf(s)); }
  function dateOf(s) { const [y, m, d] = s.split("-").map(Number); return new Date(y, m - 1, d); }
  function dateInput(d) {
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate());
  }
  // lastSeen shows a last-seen time with its date, always (the table
  // spans days): "Mar 3, 14:05".
  function lastSeen(s) {
    if (!s) return "";
    return new Date(s).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  function iso(d) { return d.toISOString().replace(/\.\d+Z$/, "Z"); }

  // span computes the period in the browser's local time: [from, to).
  function span() {
    const now = new Date();
    const day = (offset) => new Date(now.getFullYear(), now.getMonth(), now.getDate() + offset);
    switch (state.period) {
      case "today": return [day(0), now];
      case "yesterday": return [day(-1), day(0)];
      case "7d": return [day(-6), now];
      case "month": return [new Date(now.getFullYear(), now.getMonth(), 1), now];
      case "lastmonth": return [new Date(now.getFullYear(), now.getMonth() - 1, 1), new Date(now.getFullYear(), now.getMonth(), 1)];
      case "custom": {
        const f = dateOf(state.from), t = dateOf(state.to);
        return [f, new Date(t.getFullYear(), t.getMonth(), t.getDate() + 1)];
      }
    }
    return [day(-29), now]; // 30d
  }

  // query is the API query of the current view (without paging).
  function query() {
    const [from, to] = span();
    const q = new URLSearchParams();
    q.set("from", iso(from)); q.set("to", iso(to));
    if (state.router) q.set("router", state.router);
    if (state.search) q.set("search", state.search);
    if (state.sort !== "total") q.set("sort", state.sort);
    return q;
  }
  function saveURL() {
    const q = new URLSearchParams();
    q.set("period", state.period);
    if (state.period === "custom") { q.set("from", state.from); q.set("to", state.to); }
    if (state.router) q.set("router", state.router);
    if (state.search) q.set("search", state.search);
    if (state.sort !== "total") q.set("sort", state.sort);
    if (state.offset) q.set("offset", state.offset);
    history.replaceState(null, "", location.pathname + "?" + q.toString());
    document.getElementById("csv").href = "/api/v1/subscribers/usage.csv?" + query().toString();
  }

  const notice = document.getElementById("page-notice");
  function problem(msg) { notice.textContent = msg; show(notice, !!msg); }

  // Period picker.
  const periodButtons = document.querySelectorAll("#periods button");
  const customForm = document.getElementById("custom-period");
  function markPeriod() {
    periodButtons.forEach((b) => b.classList.toggle("active", b.dataset.period === state.period));
    show(customForm, state.period === "custom");
  }
  periodButtons.forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.period === "custom") {
      const [from, to] = span();
      document.getElementById("custom-from").value = dateInput(from);
      document.getElementById("custom-to").value = dateInput(new Date(to - 1));
      state.period = "custom"; markPeriod(); return;
    }
    state.period = b.dataset.period; state.offset = 0; refresh();
  }));
  customForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = document.getElementById("custom-from").value, t = document.getElementById("custom-to").value;
    if (!isDate(f) || !isDate(t)) return;
    state.from = f; state.to = t; state.offset = 0; refresh();
  });

  // Router select and search box (debounced).
  const routerSel = document.getElementById("router");
  routerSel.addEventListener("change", () => { state.router = routerSel.value; state.offset = 0; refresh(); });
  const searchBox = document.getElementById("search");
  searchBox.value = state.search;
  let debounce = 0;
  searchBox.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      const v = searchBox.value.trim();
      if (v === state.search) return;
      state.search = v; state.offset = 0; refresh();
    }, 300);
  });
  async function loadRouters() {
    try {
      const rs = await api("/routers");
      rs.forEach((r) => routerSel.append(el("option", { value: String(r.id) }, r.name || r.address)));
    } catch (e) { /* the select keeps "All routers" */ }
    if (state.router && !routerSel.querySelector('option[value="' + CSS.escape(state.router) + '"]')) {
      routerSel.append(el("option", { value: state.router }, "router " + state.router));
    }
    routerSel.value = state.router;
  }

  // Sortable headers.
  const sortButtons = document.querySelectorAll("#usage button.sort");
  function markSort() {
    sortButtons.forEach((b) => {
      const on = b.dataset.sort === state.sort;
      b.classList.toggle("active", on);
      b.closest("th").setAttribute("aria-sort", on ? (state.sort === "name" ? "ascending" : "descending") : "none");
    });
  }
  sortButtons.forEach((b) => b.addEventListener("click", () => { state.sort = b.dataset.sort; state.offset = 0; refresh(); }));

  // Paging.
  let count = 0;
  document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - pageSize); refresh(); });
  document.getElementById("next").addEventListener("click", () => { state.offset += pageSize; refresh(); });

  // An answer that arrives after a newer request was sent is dropped.
  const tickets = new Map();
  function ticket(key) { const n = (tickets.get(key) || 0) + 1; tickets.set(key, n); return () => tickets.get(key) === n; }

  const tbody = document.querySelector("#usage tbody");
  const exact = (v) => Number(v).toLocaleString() + " bytes";
  function num(v, cls) { return el("td", { class: "num" + (cls ? " " + cls : ""), title: exact(v) }, bytes(v)); }
  function resolutionName(res) { return res === "1d" ? "daily, UTC days" : res === "1h" ? "hourly" : res; }

  async function loadUsage() {
    const current = ticket("usage");
    const q = query();
    q.set("limit", pageSize); q.set("offset", state.offset);
    try {
      const res = await api("/subscribers/usage?" + q.toString());
      if (!current()) return;
      problem("");
      count = res.count;
      if (state.offset > 0 && state.offset >= count) { state.offset = Math.max(0, Math.floor((count - 1) / pageSize) * pageSize); refresh(); return; }
      document.getElementById("period-note").textContent = "Read " + when(res.from) + " – " + when(res.to) + " (" + resolutionName(res.resolution) + ")";
      clear(tbody);
      if (!res.rows.length) emptyRow(tbody, 6, state.search ? "No subscriber matches." : "No subscriber traffic in this period.");
      res.rows.forEach((r) => {
        const total = r.download_bytes + r.upload_bytes;
        tbody.append(el("tr", {
          class: "click", title: "show this subscriber's traffic over time",
          dataset: { subscriber: r.subscriber, routerId: String(r.router_id), download: String(r.download_bytes), upload: String(r.upload_bytes), total: String(total) },
          onclick: () => openDetail(r),
        },
        el("td", { class: "sub" }, el("span", { class: "clip", title: r.subscriber }, r.subscriber)),
        el("td", { class: "opt" }, r.router),
        num(r.download_bytes), num(r.upload_bytes), num(total, "strong"),
        el("td", { class: "opt", title: when(r.last_seen) }, lastSeen(r.last_seen))));
      });
      const t = res.total;
      document.getElementById("total-label").textContent = "Total (" + count.toLocaleString() + ")";
      const cells = [["total-down", t.download_bytes], ["total-up", t.upload_bytes], ["total-all", t.download_bytes + t.upload_bytes]];
      cells.forEach(([id, v]) => { const c = document.getElementById(id); c.textContent = bytes(v); c.title = exact(v); c.dataset.bytes = String(v); });
      const first = count ? state.offset + 1 : 0, last = Math.min(state.offset + res.rows.length, count);
      document.getElementById("page-info").textContent = first + "–" + last + " of " + count.toLocaleString();
      document.getElementById("prev").disabled = state.offset === 0;
      document.getElementById("next").disabled = state.offset + pageSize >= count;
    } catch (e) {
      if (!current()) return;
      emptyRow(tbody, 6, "—");
      problem(e.message);
    }
  }

  // Detail card: one subscriber's download and upload per hour or day.
  const detail = document.getElementById("detail");
  const chartBox = document.getElementById("detail-chart");
  let plot = null;
  document.getElementById("detail-close").addEventListener("click", () => {
    show(detail, false);
    if (plot) { plot.destroy(); plot = null; }
  });
  // detailLinks points the card's links at the subscriber: the router page
  // filtered by the name over 24 h, and the flow search over the last 48 h
  // (the raw window by default; the search keeps what is still there).
  const routerLink = document.getElementById("detail-router-link");
  const flowsLink = el("a", { id: "detail-flows-link", href: "/flows" }, "Flows (last 48 h)");
  routerLink.after(flowsLink);
  function detailLinks(r) {
    const known = r.router_id > 0; // a negative id is an exporter no router claims
    const rq = new URLSearchParams({ subscriber: r.subscriber, range: "24h" });
    routerLink.href = "/routers/" + r.router_id + "?" + rq.toString();
    routerLink.textContent = "Router page for " + r.subscriber;
    show(routerLink, known);
    // Whole minutes, as the Flows page's date inputs keep them: the end
    // rounded up keeps the flows of the current minute.
    const to = new Date(Math.ceil(Date.now() / 60e3) * 60e3), from = new Date(to - 48 * 3600e3);
    const fq = new URLSearchParams({ subscriber: r.subscriber });
    if (known) fq.set("router", String(r.router_id));
    fq.set("from", iso(from)); fq.set("to", iso(to));
    flowsLink.href = "/flows?" + fq.toString();
  }
  async function openDetail(r) {
    document.getElementById("detail-name").textContent = r.subscriber;
    document.getElementById("detail-router").textContent = r.router;
    document.getElementById("detail-totals").textContent = "Download " + bytes(r.download_bytes) + " · upload " + bytes(r.upload_bytes) +
      " · total " + bytes(r.download_bytes + r.upload_bytes);
    detailLinks(r);
    show(detail, true);
    detail.scrollIntoView({ block: "nearest" });
    const q = query();
    q.delete("search"); q.delete("sort");
    q.set("router", String(r.router_id)); q.set("subscriber", r.subscriber);
    const current = ticket("detail");
    delete chartBox.dataset.points;
    try {
      const s = await api("/subscribers/usage/series?" + q.toString());
      if (!current()) return;
      drawChart(s);
      loadDomains(q, current);
    } catch (e) {
      if (!current()) return;
      if (plot) { plot.destroy(); plot = null; }
      clear(chartBox); chartBox.append(el("p", { class: "muted empty" }, "No chart: " + e.message));
      chartBox.dataset.points = "0";
    }
  }
  // loadDomains fills the detail card's domains table: the subscriber's
  // largest remote domains over the period, the rest summed.
  const domainsBody = document.getElementById("detail-domains").tBodies[0];
  async function loadDomains(q, current) {
    clear(domainsBody);
    try {
      const d = await api("/subscribers/domains?" + q.toString());
      if (!current()) return;
      if (!d.rows.length) { emptyRow(domainsBody, 3, "No domain known for this period."); return; }
      const row = (name, u, cls) => el("tr", cls ? { class: cls } : null, el("td", { class: "key" }, name),
        num(u.download_bytes), num(u.upload_bytes));
      d.rows.forEach((u) => domainsBody.append(row(u.domain || "unknown (no name in the DNS caches)", u)));
      if (d.other.download_bytes + d.other.upload_bytes > 0) domainsBody.append(row("other", d.other, "other"));
    } catch (e) {
      if (!current()) return;
      emptyRow(domainsBody, 3, "No domains: " + e.message);
    }
  }

  function drawChart(s) {
    // A step chart: each step's bytes from its start to the next step.
    const path = () => uPlot.paths.stepped({ align: 1 });
    const value = (u, v) => v == null ? "—" : bytes(v);
    const width = Math.max(280, chartBox.clientWidth);
    const opts = {
      width, height: width < 600 ? 200 : 260,
      series: [{}, { label: "Download", stroke: "#1f6feb", fill: "rgba(31,111,235,0.45)", width: 1, paths: path(), value },
        { label: "Upload", stroke: "#e8590c", fill: "rgba(232,89,12,0.45)", width: 1, paths: path(), value }],
      axes: [{}, { values: (u, vals) => vals.map((v) => bytes(v)), size: 70 }],
      scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { live: true },
    };
    if (plot) plot.destroy();
    clear(chartBox);
    plot = new uPlot(opts, [s.times, s.download_bytes, s.upload_bytes], chartBox);
    chartBox.dataset.points = String(s.download_bytes.filter((v) => v > 0).length + s.upload_bytes.filter((v) => v > 0).length);
    chartBox.dataset.sum = String(s.download_bytes.reduce((a, b) => a + b, 0) + s.upload_bytes.reduce((a, b) => a + b, 0));
    document.getElementById("detail-note").textContent = "bytes per " + (s.step >= 86400 ? "day (UTC)" : "hour");
  }
  window.addEventListener("resize", () => { if (plot) plot.setSize({ width: Math.max(280, chartBox.clientWidth), height: plot.height }); });

  // refresh reloads the table; #main gets data-loaded-ms when it is done.
  const main = document.getElementById("main");
  function refresh() {
    saveURL(); markPeriod(); markSort();
    delete main.dataset.loadedMs;
    loadUsage().then(() => { main.dataset.loadedMs = String(Math.round(performance.now())); });
  }
  if (state.period === "custom") {
    document.getElementById("custom-from").value = state.from;
    document.getElementById("custom-to").value = state.to;
  }
  loadRouters();
  refresh();
})();
