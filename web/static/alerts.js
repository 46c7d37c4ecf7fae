// Alerts page: the active alerts first (acknowledge), the past ones, the
// filters (kept in the URL), and the state of detection, notification and
// mitigation with a "Send test" button per channel.
"use strict";
(function () {
  const { api, el, count, ago, when, shortWhen, badge, show, clear, emptyRow } = window.fb;
  const { byUrgency, lasted, target, peak, direction, severity } = window.fbAlerts;
  const form = document.getElementById("alert-filters");
  const errBox = document.getElementById("alerts-error");
  const activeBody = document.querySelector("#active-alerts tbody");
  const pastBody = document.querySelector("#past-alerts tbody");
  const fields = ["kind", "router", "show", "since"];

  (function fromURL() {
    const q = new URLSearchParams(location.search);
    fields.forEach((k) => {
      const v = q.get(k), sel = form.elements[k];
      if (v && [...sel.options].some((o) => o.value === v)) sel.value = v;
    });
  })();
  function saveURL() {
    const q = new URLSearchParams();
    fields.forEach((k) => { const v = form.elements[k].value; if (v && !(k === "show" && v === "all") && !(k === "since" && v === "7d")) q.set(k, v); });
    const s = q.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }
  function query() {
    const q = new URLSearchParams();
    if (form.elements.kind.value) q.set("kind", form.elements.kind.value);
    if (form.elements.router.value) q.set("router", form.elements.router.value);
    if (form.elements.show.value === "active") q.set("active", "1");
    else if (form.elements.since.value === "all") q.set("all", "1");
    else q.set("since", form.elements.since.value);
    return q;
  }

  // ackCell shows who acknowledged, or the button (active alerts only).
  function ackCell(a) {
    if (a.acked_by) {
      return el("td", { class: "acked", title: when(a.acked_at) }, "acknowledged by " + a.acked_by);
    }
    if (a.ended) return el("td", { class: "muted" }, "—");
    const btn = el("button", { type: "button", class: "ack needs-operator", title: "Acknowledge: you are on it" }, "Acknowledge");
    btn.addEventListener("click", () => ack(a, btn));
    return el("td", null, btn);
  }

  function row(a) {
    const router = a.router_id ? el("a", { href: "/routers/" + a.router_id }, a.router) : a.router || "—";
    return el("tr", { class: "sev-" + a.severity, dataset: { id: a.id, kind: a.kind } },
      el("td", { class: "opt" }, severity(a)),
      el("td", null, el("a", { href: "/alerts/" + a.id, class: "alert-link", title: a.summary }, a.kind)),
      el("td", { class: "opt" }, router),
      el("td", { class: "target" }, a.target, a.subscriber ? el("span", { class: "muted" }, " " + a.subscriber) : null),
      el("td", { class: "opt" }, direction(a)),
      el("td", { class: "opt", title: when(a.started) }, shortWhen(a.started)),
      el("td", { class: "num", title: a.ended ? "ended " + when(a.ended) : "still active" }, lasted(a)),
      el("td", { class: "num", title: "peak at " + when(a.peak_at) }, peak(a)),
      ackCell(a));
  }

  async function ack(a, btn) {
    btn.disabled = true;
    show(errBox, false);
    try {
      const updated = await api("/alerts/" + a.id + "/ack", { method: "POST" });
      const tr = btn.closest("tr");
      if (tr) tr.replaceWith(row(updated));
    } catch (e) {
      btn.disabled = false;
      errBox.textContent = "Cannot acknowledge alert " + a.id + ": " + e.message; show(errBox, true);
    }
  }

  let loading = 0;
  async function loadAlerts() {
    const mine = ++loading;
    const activeOnly = form.elements.show.value === "active";
    show(document.getElementById("past-card"), !activeOnly);
    form.elements.since.disabled = activeOnly;
    try {
      const alerts = await api("/alerts?" + query());
      if (mine !== loading) return;
      show(errBox, false);
      const active = alerts.filter((a) => !a.ended).sort(byUrgency);
      const past = alerts.filter((a) => a.ended);
      clear(activeBody);
      if (!active.length) emptyRow(activeBody, 9, "No active alert.");
      active.forEach((a) => activeBody.append(row(a)));
      clear(pastBody);
      if (!past.length) emptyRow(pastBody, 9, "No past alert in this range.");
      past.forEach((a) => pastBody.append(row(a)));
      document.getElementById("active-count").textContent = active.length ? String(active.length) : "";
      document.getElementById("past-count").textContent = past.length ? String(past.length) : "";
    } catch (e) {
      if (mine !== loading) return;
      errBox.textContent = "Cannot load the alerts: " + e.message; show(errBox, true);
      emptyRow(activeBody, 9, "—"); emptyRow(pastBody, 9, "—");
    }
  }

  // The status of detection, notification and mitigation.
  const statusErr = document.getElementById("status-error");
  const testResult = document.getElementById("test-result");
  function kvRow(tb, k, v, bad) { tb.append(el("tr", null, el("th", null, k), el("td", { class: bad ? "num bad" : "num" }, v))); }

  function renderDetector(d) {
    const tb = document.querySelector("#detector tbody");
    clear(tb);
    kvRow(tb, "Detection", d.enabled ? "on" : "off (alerts.enabled)");
    kvRow(tb, "Active alerts", String(d.active));
    kvRow(tb, "Hosts tracked", count(d.hosts) + " of " + count(d.max_hosts));
    kvRow(tb, "Flows of hosts without room", count(d.hosts_dropped), d.hosts_dropped > 0);
    kvRow(tb, "Evaluations", count(d.evaluations));
    kvRow(tb, "Last evaluation", d.evaluations ? ago(d.last_evaluation) + " (" + (d.evaluation_seconds * 1000).toFixed(1) + " ms)" : "none yet");
    kvRow(tb, "Alerts not stored", count(d.store_errors), d.store_errors > 0);
    kvRow(tb, "Events dropped", count(d.events_dropped), d.events_dropped > 0);
  }

  async function sendTest(name, btn) {
    btn.disabled = true;
    testResult.className = "muted"; testResult.textContent = "Sending a test message to " + name + "…";
    try {
      await api("/notifications/test", { method: "POST", body: { channel: name } });
      testResult.className = "ok"; testResult.textContent = "Test message delivered to " + name + ".";
    } catch (e) {
      testResult.className = "error"; testResult.textContent = "Test message to " + name + " failed: " + e.message;
    }
    btn.disabled = false;
    loadStatus();
  }

  function renderChannels(list) {
    const tb = document.querySelector("#channels tbody");
    if (!list.length) { emptyRow(tb, 6, "No notification channel is configured."); return; }
    clear(tb);
    list.forEach((c) => {
      const btn = el("button", { type: "button", class: "send-test needs-operator", dataset: { channel: c.name } }, "Send test");
      btn.addEventListener("click", () => sendTest(c.name, btn));
      const err = c.last_error ? el("td", { class: "wrap error", title: when(c.last_error_at) }, c.last_error + (c.last_error_at ? " (" + ago(c.last_error_at) + ")" : "")) :
        el("td", { class: "muted" }, c.last_sent ? "none; last sent " + ago(c.last_sent) : "none");
      tb.append(el("tr", { dataset: { channel: c.name } },
        el("td", { class: "channel" }, c.name, " ", el("span", { class: "muted" }, c.type), el("div", null, btn)),
        el("td", { class: "num" }, count(c.sent)),
        el("td", { class: c.failed ? "num bad" : "num" }, count(c.failed)),
        el("td", { class: c.dropped ? "num bad" : "num", title: count(c.rate_limited) + " held back by the rate limit" }, count(c.dropped)),
        el("td", { class: "num" }, String(c.queued)),
        err));
    });
  }

  function renderMitigation(list) {
    const tb = document.querySelector("#mitigation tbody");
    if (!list.length) { emptyRow(tb, 8, "Mitigation is off on every router."); return; }
    clear(tb);
    list.forEach((m) => tb.append(el("tr", { dataset: { router: m.router } },
      el("td", null, m.router),
      el("td", null, !m.enabled ? badge("off", "new") : m.dry_run ? badge("dry run", "waiting") : badge("on", "ok")),
      el("td", { class: "num" }, m.entries + " of " + m.max_entries),
      el("td", { class: "num" }, count(m.added)), el("td", { class: "num" }, count(m.removed)),
      el("td", { class: "num" }, count(m.skipped)), el("td", { class: m.errors ? "num bad" : "num" }, count(m.errors)),
      el("td", { class: "wrap" + (m.last_error ? " error" : " muted") }, m.last_error || "none"))));
  }

  async function loadStatus() {
    try {
      const st = await api("/alerts/status");
      show(statusErr, false);
      renderDetector(st.detector);
      renderChannels(st.notifications);
      renderMitigation(st.mitigation);
    } catch (e) {
      statusErr.textContent = "Cannot load the status: " + e.message; show(statusErr, true);
    }
  }

  async function loadRouters() {
    try {
      const routers = await api("/routers");
      const sel = form.elements.router, want = new URLSearchParams(location.search).get("router");
      routers.forEach((r) => sel.append(el("option", { value: r.name }, r.name)));
      if (want && routers.some((r) => r.name === want)) sel.value = want;
    } catch (e) { /* the list reports errors */ }
  }

  // #main gets data-loaded-ms when everything has answered (tests wait
  // for it).
  const main = document.getElementById("main");
  function refresh() {
    saveURL();
    delete main.dataset.loadedMs;
    Promise.allSettled([loadAlerts(), loadStatus()]).then(() => { main.dataset.loadedMs = String(Math.round(performance.now())); });
  }
  form.addEventListener("change", refresh);
  form.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
  loadRouters().then(refresh);
  setInterval(() => { if (!document.hidden) { loadAlerts(); loadStatus(); } }, 15000);
})();
