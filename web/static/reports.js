// Reports page: the traffic report of a calendar period in a time zone,
// per subscriber, router, interface or the whole fleet (volumes, peaks, a
// percentile of the 5-minute rates, top applications), sortable,
// printable, as CSV or JSON; and the runs of the scheduled reports. The
// state is in the URL, so a report can be bookmarked or shared.
"use strict";
(function () {
  const { api, el, bits, bytes, when, show, clear, emptyRow } = window.fb;
  const periods = ["this", "last", "month", "custom"];
  const kinds = ["subscriber", "router", "interface", "fleet"];
  const main = document.getElementById("main");

  // The browser's zone is the default time zone.
  let browserZone = "UTC";
  try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* old browser */ }
  if (browserZone === "Etc/UTC" || browserZone === "Etc/GMT") browserZone = "UTC";
  function validZone(z) {
    try { new Intl.DateTimeFormat("en", { timeZone: z }); return true; } catch (e) { return false; }
  }

  const state = { period: "last", month: "", from: "", to: "", tz: browserZone, by: "subscriber", pct: "95",
    router: "", search: "", sort: "total", dir: "desc" };
  const isMonth = (s) => /^\d{4}-(0[1-9]|1[0-2])$/.test(s);
  const isDate = (s) => /^\d{4}-\d{2}-\d{2}$/.test(s) && !isNaN(Date.parse(s));
  (function fromURL() {
    const q = new URLSearchParams(location.search);
    if (periods.includes(q.get("period"))) state.period = q.get("period");
    if (state.period === "month") {
      state.month = q.get("month") || "";
      if (!isMonth(state.month)) state.period = "last";
    }
    if (state.period === "custom") {
      state.from = q.get("from") || ""; state.to = q.get("to") || "";
      if (!isDate(state.from) || !isDate(state.to)) state.period = "last";
    }
    const tz = q.get("tz");
    if (tz && validZone(tz)) state.tz = tz;
    if (kinds.includes(q.get("by"))) state.by = q.get("by");
    const pct = Number(q.get("pct"));
    if (q.get("pct") && pct > 0 && pct <= 100) state.pct = q.get("pct");
    state.router = q.get("router") || "";
    state.search = q.get("search") || "";
    if (q.get("sort")) state.sort = q.get("sort");
    if (q.get("dir") === "asc" || q.get("dir") === "desc") state.dir = q.get("dir");
  })();

  // monthIn returns the calendar month ("2026-11") of now in zone tz,
  // offset by delta months.
  function monthIn(tz, delta) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit" }).formatToParts(new Date());
    let y = Number(parts.find((p) => p.type === "year").value), m = Number(parts.find((p) => p.type === "month").value) + delta;
    while (m < 1) { m += 12; y--; }
    while (m > 12) { m -= 12; y++; }
    return y + "-" + String(m).padStart(2, "0");
  }
  // periodParam is the API's period of the state.
  function periodParam() {
    switch (state.period) {
      case "this": return monthIn(state.tz, 0);
      case "month": return state.month;
      case "custom": return state.from === state.to ? state.from : state.from + ".." + state.to;
    }
    return monthIn(state.tz, -1);
  }
  function apiQuery(format) {
    const q = new URLSearchParams();
    q.set("period", periodParam()); q.set("tz", state.tz); q.set("by", state.by); q.set("percentile", state.pct);
    if (state.router) q.set("router", state.router);
    if (state.search && searchable()) q.set("search", state.search);
    q.set("top_apps", "3");
    if (format) q.set("format", format);
    return q;
  }
  const searchable = () => state.by === "subscriber" || state.by === "interface";
  function saveURL() {
    const q = new URLSearchParams();
    q.set("period", state.period);
    if (state.period === "month") q.set("month", state.month);
    if (state.period === "custom") { q.set("from", state.from); q.set("to", state.to); }
    q.set("tz", state.tz); q.set("by", state.by);
    if (state.pct !== "95") q.set("pct", state.pct);
    if (state.router) q.set("router", state.router);
    if (state.search) q.set("search", state.search);
    if (state.sort !== "total" || state.dir !== "desc") { q.set("sort", state.sort); q.set("dir", state.dir); }
    history.replaceState(null, "", location.pathname + "?" + q.toString());
    document.getElementById("csv").href = "/api/v1/reports?" + apiQuery("csv").toString();
    const jq = apiQuery("json"); jq.set("download", "1");
    document.getElementById("json").href = "/api/v1/reports?" + jq.toString();
  }

  const errBox = document.getElementById("report-error");
  function problem(msg) { errBox.textContent = msg; show(errBox, !!msg); }

  // The form.
  const f = {
    month: document.getElementById("f-month"), from: document.getElementById("f-from"), to: document.getElementById("f-to"),
    tz: document.getElementById("f-tz"), by: document.getElementById("f-by"), pct: document.getElementById("f-pct"),
    router: document.getElementById("f-router"), search: document.getElementById("f-search"),
  };
  function addOption(sel, value, text) {
    let o = [...sel.options].find((x) => x.value === value);
    if (!o) { o = el("option", { value: value }, text || value); sel.append(o); }
    return o;
  }
  ["America/Sao_Paulo", "America/Mexico_City", "America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London",
    "Europe/Berlin", "Europe/Madrid", "Africa/Lagos", "Africa/Johannesburg", "Asia/Kolkata", "Asia/Jakarta", "Asia/Manila",
    "Australia/Sydney"].forEach((z) => addOption(f.tz, z));
  addOption(f.tz, browserZone).textContent = browserZone + " (this browser)";
  addOption(f.tz, state.tz);
  const periodButtons = document.querySelectorAll("#periods button");
  function markForm() {
    periodButtons.forEach((b) => b.classList.toggle("active", b.dataset.period === state.period));
    show(document.getElementById("month-field"), state.period === "month");
    show(document.getElementById("custom-fields"), state.period === "custom");
    show(document.getElementById("search-field"), searchable());
    f.tz.value = state.tz; f.by.value = state.by; f.pct.value = state.pct; f.search.value = state.search;
    if (state.period === "month") f.month.value = state.month;
    if (state.period === "custom") { f.from.value = state.from; f.to.value = state.to; }
  }
  periodButtons.forEach((b) => b.addEventListener("click", () => {
    const p = b.dataset.period;
    if (p === "month") {
      state.period = "month"; state.month = isMonth(f.month.value) ? f.month.value : monthIn(state.tz, -1);
    } else if (p === "custom") {
      // The form opens on the month shown; Show asks for it.
      const m = periodParam().slice(0, 7), [y, mo] = m.split("-").map(Number);
      if (!isDate(f.from.value)) f.from.value = m + "-01";
      if (!isDate(f.to.value)) f.to.value = m + "-" + String(new Date(y, mo, 0).getDate()).padStart(2, "0");
      state.period = "custom"; markForm(); return;
    } else {
      state.period = p;
    }
    refresh();
  }));
  f.month.addEventListener("change", () => { if (isMonth(f.month.value)) { state.month = f.month.value; refresh(); } });
  document.getElementById("custom-go").addEventListener("click", () => {
    if (!isDate(f.from.value) || !isDate(f.to.value)) { problem("Give both dates of the custom period."); return; }
    state.from = f.from.value; state.to = f.to.value; refresh();
  });
  f.tz.addEventListener("change", () => { state.tz = f.tz.value; refresh(); });
  f.by.addEventListener("change", () => { state.by = f.by.value; refresh(); });
  f.pct.addEventListener("change", () => {
    const v = Number(f.pct.value);
    if (!(v > 0 && v <= 100)) { problem("The percentile is a number above 0 and at most 100."); return; }
    state.pct = String(v); refresh();
  });
  f.router.addEventListener("change", () => { state.router = f.router.value; refresh(); });
  let debounce = 0;
  f.search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      const v = f.search.value.trim();
      if (v !== state.search) { state.search = v; refresh(); }
    }, 300);
  });
  document.getElementById("report-form").addEventListener("submit", (ev) => ev.preventDefault());
  document.getElementById("print").addEventListener("click", () => window.print());

  async function loadRouters() {
    try {
      const rs = await api("/routers");
      rs.forEach((r) => addOption(f.router, String(r.id), r.name || r.address));
    } catch (e) { /* the select keeps "All routers" */ }
    if (state.router) addOption(f.router, state.router, "router " + state.router);
    f.router.value = state.router;
  }

  // ordinal names a percentile: 95th, 99.9th, 1st, 2nd, 3rd, 11th.
  function ordinal(p) {
    const n = Number(p), s = String(n);
    if (!Number.isInteger(n)) return s + "th";
    const t = n % 100;
    if (t >= 11 && t <= 13) return s + "th";
    return s + ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  }
  // at writes a peak's time in the report's zone: "Nov 5, 20:35".
  function at(iso, tz) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(undefined, { timeZone: tz, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }
  function day(iso, tz) { return new Date(iso).toLocaleDateString(undefined, { timeZone: tz, year: "numeric", month: "short", day: "numeric" }); }
  const exact = (v) => Number(v).toLocaleString() + " bytes";
  const byteCell = (v, cls) => el("td", { class: "num" + (cls ? " " + cls : ""), title: exact(v) }, bytes(v));
  const rateCell = (v, cls) => el("td", { class: "num" + (cls ? " " + cls : ""), title: Math.round(v).toLocaleString() + " b/s" }, bits(v));
  function peakCell(r, tz) {
    return el("td", { class: "num peak" }, bits(r.bps), r.at ? el("span", { class: "at" }, at(r.at, tz)) : null);
  }

  // columns returns the table's columns for a report: key (sorting),
  // label, value (for sorting), cell, and total (the totals row's cell).
  function columns(rep) {
    const down = rep.by === "interface" ? "In" : "Download", up = rep.by === "interface" ? "Out" : "Upload";
    const pct = ordinal(rep.percentile), tz = rep.tz;
    const cols = [];
    const text = (key, label, value, cls) => cols.push({ key, label, value, text: true, cls,
      cell: (r) => el("td", { class: cls || "" }, el("span", { class: "name" }, value(r) || "")) });
    if (new Set(rep.rows.map((r) => r.period)).size > 1) text("period", "Period", (r) => r.period, "period");
    switch (rep.by) {
      case "subscriber":
        text("name", "Subscriber", (r) => r.subscriber, "name");
        text("customer", "Customer ID", (r) => r.customer_id, "cust");
        text("router", "Router", (r) => r.router, "opt");
        break;
      case "router": text("name", "Router", (r) => r.router, "name"); break;
      case "interface":
        text("router", "Router", (r) => r.router, "opt");
        text("name", "Interface", (r) => (r.interface || "ifIndex " + r.if_index), "name");
        break;
      default: text("name", "Fleet", () => "All routers", "name");
    }
    const num = (key, label, value, cell, total) => cols.push({ key, label, value, cell, total, num: true });
    const sum = (v) => (rows) => rows.reduce((a, r) => a + v(r), 0);
    num("download", down, (r) => r.download_bytes, (r) => byteCell(r.download_bytes), sum((r) => r.download_bytes));
    num("upload", up, (r) => r.upload_bytes, (r) => byteCell(r.upload_bytes), sum((r) => r.upload_bytes));
    num("total", "Total", (r) => r.total_bytes, (r) => byteCell(r.total_bytes, "strong"), sum((r) => r.total_bytes));
    num("peak_down", "Peak " + (rep.by === "interface" ? "in" : "↓"), (r) => r.peak_download.bps, (r) => peakCell(r.peak_download, tz));
    num("peak_up", "Peak " + (rep.by === "interface" ? "out" : "↑"), (r) => r.peak_upload.bps, (r) => peakCell(r.peak_upload, tz));
    num("pct_down", pct + (rep.by === "interface" ? " in" : " ↓"), (r) => r.percentile_download_bps, (r) => rateCell(r.percentile_download_bps));
    num("pct_up", pct + (rep.by === "interface" ? " out" : " ↑"), (r) => r.percentile_upload_bps, (r) => rateCell(r.percentile_upload_bps));
    num("billable", pct + " billable", (r) => r.percentile_billable_bps, (r) => rateCell(r.percentile_billable_bps, "strong"));
    cols.push({ key: "apps", label: "Top applications", text: true, cls: "apps", value: (r) => (r.top_apps && r.top_apps[0] ? r.top_apps[0].app : ""),
      cell: (r) => el("td", { class: "apps" }, (r.top_apps || []).map((a) => a.app + " " + bytes(a.bytes)).join(", ")) });
    return cols;
  }

  let report = null;
  const table = document.getElementById("report");
  function render() {
    const rep = report, cols = columns(rep);
    if (!cols.some((c) => c.key === state.sort)) { state.sort = "total"; state.dir = "desc"; }
    const head = table.tHead.rows[0];
    clear(head);
    cols.forEach((c) => {
      const on = c.key === state.sort;
      const b = el("button", { type: "button", class: "sort" + (on ? " active " + state.dir : ""), dataset: { sort: c.key } }, c.label);
      b.addEventListener("click", () => {
        if (state.sort === c.key) state.dir = state.dir === "asc" ? "desc" : "asc";
        else { state.sort = c.key; state.dir = c.text ? "asc" : "desc"; }
        saveURL(); render();
      });
      head.append(el("th", { class: (c.num ? "num " : "") + (c.cls || ""), "aria-sort": on ? (state.dir === "asc" ? "ascending" : "descending") : "none" }, b));
    });
    const col = cols.find((c) => c.key === state.sort), sign = state.dir === "asc" ? 1 : -1;
    const rows = rep.rows.slice().sort((a, b) => {
      const x = col.value(a), y = col.value(b);
      const d = col.text ? String(x || "").localeCompare(String(y || "")) : x - y;
      return sign * d || a.period.localeCompare(b.period);
    });
    const tbody = table.tBodies[0];
    clear(tbody);
    if (!rows.length) emptyRow(tbody, cols.length, state.search ? "Nothing matches." : "No traffic in this period.");
    rows.forEach((r) => {
      const key = rep.by === "subscriber" ? r.subscriber : rep.by === "interface" ? r.router + "/" + (r.interface || r.if_index) : rep.by === "router" ? r.router : "fleet";
      tbody.append(el("tr", { dataset: { key, period: r.period, download: String(r.download_bytes), upload: String(r.upload_bytes),
        total: String(r.total_bytes), billable: String(Math.round(r.percentile_billable_bps)) } }, ...cols.map((c) => c.cell(r))));
    });
    const foot = table.tFoot;
    clear(foot);
    if (rows.length > 1) {
      const tr = el("tr", { class: "totals" });
      let labelled = false;
      cols.forEach((c) => {
        if (!c.total) {
          tr.append(el(labelled ? "td" : "th", { class: c.cls || "" }, labelled ? "" : "Total (" + rows.length + " rows)"));
          labelled = true;
          return;
        }
        const v = c.total(rows);
        tr.append(el("td", { class: "num", title: exact(v), dataset: { bytes: String(v), total: c.key } }, bytes(v)));
      });
      foot.append(tr);
    }
  }

  // facts describes the report for the card and the printed header.
  function facts(rep) {
    const by = { subscriber: "per subscriber", router: "per router", interface: "per interface", fleet: "the whole fleet" }[rep.by] || rep.by;
    const to = new Date(Date.parse(rep.to) - 1);
    let s = day(rep.from, rep.tz) + " – " + day(to.toISOString(), rep.tz) + " (" + rep.tz + ") · " + by +
      " · " + ordinal(rep.percentile) + " percentile";
    if (state.router) s += " · router " + (f.router.selectedOptions[0] ? f.router.selectedOptions[0].textContent : state.router);
    if (state.search && searchable()) s += " · names containing “" + state.search + "”";
    return s;
  }

  const tickets = new Map();
  function ticket(key) { const n = (tickets.get(key) || 0) + 1; tickets.set(key, n); return () => tickets.get(key) === n; }
  async function loadReport() {
    const current = ticket("report");
    const title = document.getElementById("report-title"), note = document.getElementById("report-note");
    try {
      const rep = await api("/reports?" + apiQuery().toString());
      if (!current()) return;
      problem("");
      report = rep;
      title.textContent = "Report " + rep.period;
      document.getElementById("report-facts").textContent = facts(rep);
      document.getElementById("print-title").textContent = "Traffic report " + rep.period;
      document.getElementById("print-facts").textContent = facts(rep) + " · generated " +
        new Date(rep.generated).toLocaleString(undefined, { timeZone: rep.tz, dateStyle: "medium", timeStyle: "short" }) + " (" + rep.tz + ")";
      document.title = "Report " + rep.period + " " + ({ fleet: "fleet" }[rep.by] || "per " + rep.by) + " · flowbox";
      note.textContent = rep.note || ""; show(note, !!rep.note);
      render();
    } catch (e) {
      if (!current()) return;
      report = null;
      clear(table.tHead.rows[0]); clear(table.tFoot);
      emptyRow(table.tBodies[0], 1, "—");
      problem(e.message);
    }
  }

  // runBadge says how a run ended: ok, failed, or running (not finished).
  function runBadge(r) {
    if (!r.finished && !r.ok && !r.error) return el("span", { class: "badge waiting" }, "running");
    return el("span", { class: "badge " + (r.ok ? "ok" : "error") }, r.ok ? "ok" : "failed");
  }
  // loadSchedules lists the configured schedules: what each reports,
  // where it delivers, its next period and when that run is due, and how
  // its latest run ended.
  function loadSchedules(res) {
    const tbody = document.getElementById("schedules").tBodies[0];
    if (!res.schedules || !res.schedules.length) { emptyRow(tbody, 6, res.configured ? "—" : "No scheduled reports are configured (reports: in the configuration)."); return; }
    clear(tbody);
    res.schedules.forEach((s) => {
      const last = s.last_run;
      tbody.append(el("tr", { dataset: { name: s.name } },
        el("td", null, s.name),
        el("td", null, s.every + " (" + s.tz + ")"),
        el("td", null, s.by === "fleet" ? "the fleet" : "per " + s.by),
        el("td", { class: "wrap" }, s.targets.join(", ")),
        el("td", { title: when(s.next_due) }, s.next_period + ", due " + when(s.next_due)),
        last ? el("td", { class: "wrap" }, runBadge(last), " " + last.period) : el("td", { class: "muted" }, "none yet")));
    });
  }
  async function loadRuns() {
    const tbody = document.getElementById("runs").tBodies[0];
    try {
      const res = await api("/reports/runs?limit=50");
      loadSchedules(res);
      if (!res.runs.length) { emptyRow(tbody, 6, res.configured ? "No scheduled report has run yet." : "No scheduled reports are configured."); return; }
      clear(tbody);
      res.runs.forEach((r) => {
        const deliveries = el("ul", { class: "deliveries" }, ...r.deliveries.map((d) =>
          el("li", { class: d.ok ? "" : "bad" }, (d.ok ? "✓ " : "✗ ") + d.target + (d.detail ? ": " + d.detail : ""))));
        tbody.append(el("tr", { dataset: { id: String(r.id), ok: String(r.ok) } },
          el("td", null, r.schedule),
          el("td", null, r.period),
          el("td", { title: when(r.started) }, when(r.started), r.catch_up ? el("span", { class: "badge", title: "the period closed while flowbox was not running" }, "catch-up") : null),
          el("td", { class: "wrap" }, runBadge(r), r.error ? " " + r.error : ""),
          el("td", { class: "num" }, String(r.rows)),
          el("td", { class: "wrap" }, deliveries)));
      });
    } catch (e) {
      emptyRow(tbody, 6, "No runs: " + e.message);
    }
  }

  function refresh() {
    saveURL(); markForm();
    delete main.dataset.loadedMs;
    loadReport().then(() => { main.dataset.loadedMs = String(Math.round(performance.now())); });
  }
  markForm();
  loadRouters();
  loadRuns();
  refresh();
})();
