// Abuse lookup page: a complaint's public address, port and time (in its
// time zone) to the NAT mapping, the subscriber and the raw flows still
// kept; "who had this address?"; print and CSV. The query is kept in the
// URL, so a lookup can be shared or bookmarked.
"use strict";
(function () {
  const { api, el, bytes, count, show, clear, emptyRow } = window.fb;
  const form = document.getElementById("lookup");
  const whoForm = document.getElementById("who");
  const errBox = document.getElementById("lookup-error");
  const whoErr = document.getElementById("who-error");
  const answer = document.getElementById("answer");
  const main = document.getElementById("main");
  const fields = ["address", "port", "proto", "at", "tz", "window"];
  const tzSel = form.elements.tz;

  // The browser's zone is the default; it joins the list when missing.
  function addOption(sel, value, text) {
    let o = [...sel.options].find((x) => x.value === value);
    if (!o) { o = el("option", { value: value }, text || value); sel.append(o); }
    return o;
  }
  let browserZone = "UTC";
  try { browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { /* old browser */ }
  if (browserZone === "Etc/UTC" || browserZone === "Etc/GMT") browserZone = "UTC";
  addOption(tzSel, browserZone).textContent = browserZone + " (this browser)";
  tzSel.value = browserZone;

  // validZone says whether the browser knows a zone (to display in it).
  function validZone(z) {
    try { new Intl.DateTimeFormat("en", { timeZone: z }); return true; } catch (e) { return false; }
  }

  function fromURL() {
    const q = new URLSearchParams(location.search);
    fields.forEach((k) => {
      const v = q.get(k);
      if (v === null || v === "") return;
      const f = form.elements[k];
      if (f.tagName === "SELECT") {
        if (k === "tz" && !validZone(v)) return;
        addOption(f, v);
      }
      f.value = v;
    });
    if (q.get("who")) whoForm.elements.address.value = q.get("who");
    return q.get("address") && q.get("at");
  }

  function query() {
    const q = new URLSearchParams();
    fields.forEach((k) => { const v = form.elements[k].value.trim(); if (v) q.set(k, v); });
    return q;
  }

  // zone is where times are shown (with UTC): the zone chosen.
  function zone() { return validZone(tzSel.value) ? tzSel.value : "UTC"; }
  // inZone writes an instant as "2026-03-03 11:02:11 GMT-3" in z.
  function inZone(iso, z) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    if (z === "UTC") return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "") + " UTC";
    const p = {};
    new Intl.DateTimeFormat("en-CA", { timeZone: z, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "shortOffset" }).formatToParts(d).forEach((x) => { p[x.type] = x.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second + " " + (p.timeZoneName || z);
  }
  // timeCell shows an instant in the zone chosen, and in UTC below.
  function timeCell(iso, cls) {
    const z = zone();
    if (!iso || z === "UTC") return el("td", { class: cls }, inZone(iso, "UTC"));
    return el("td", { class: cls }, el("div", null, inZone(iso, z)), el("div", { class: "muted utc" }, inZone(iso, "UTC")));
  }
  function endpoint(addr, port) {
    if (!addr) return "";
    if (!port) return addr;
    return (addr.includes(":") ? "[" + addr + "]" : addr) + ":" + port;
  }
  function kv(tb, k, v) { tb.append(el("tr", null, el("th", null, k), v instanceof Node ? v : el("td", null, v))); }

  function renderQuery(ans) {
    const tb = document.querySelector("#query-facts tbody");
    clear(tb);
    const q = ans.query;
    kv(tb, "Public address", q.address + (q.port ? " port " + q.port : " (any port)") + (q.proto ? " " + q.proto : ""));
    kv(tb, "Time", timeCell(q.at));
    kv(tb, "Window", "± " + q.window);
    kv(tb, "Raw flows of that time", ans.flows_kept ? "still kept" : "no longer kept");
  }

  function renderMatches(list) {
    const tb = document.querySelector("#matches tbody");
    document.getElementById("matches-count").textContent = list.length ? String(list.length) : "";
    if (!list.length) { emptyRow(tb, 9, "No NAT mapping in the window."); return; }
    clear(tb);
    list.forEach((m) => {
      const remote = m.remote_address ? endpoint(m.remote_address, m.remote_port) + (m.remotes > 1 ? " (+" + (m.remotes - 1) + " more)" : "") : "—";
      tb.append(el("tr", { dataset: { inside: m.inside_address, subscriber: m.subscriber || "" } },
        el("td", null, m.router_id ? el("a", { href: "/routers/" + m.router_id }, m.router) : m.router || "—"),
        el("td", null, m.proto || ""),
        el("td", { class: "public" }, endpoint(m.public_address, m.public_port)),
        el("td", { class: "inside strong" }, endpoint(m.inside_address, m.inside_port)),
        el("td", { class: "remote" }, remote),
        timeCell(m.first_seen, "first"), timeCell(m.last_seen, "last"),
        el("td", { class: "subscriber strong", title: m.subscriber_source ? "from " + m.subscriber_source : null }, m.subscriber || "unknown"),
        el("td", { class: "customer" }, m.customer_id || "")));
    });
  }

  function renderFlows(ans) {
    const tb = document.querySelector("#evidence tbody");
    const note = document.getElementById("flows-note");
    const names = {};
    ans.matches.forEach((m) => { names[m.router_id] = m.router; });
    document.getElementById("flows-count").textContent = ans.flows.length ? String(ans.flows.length) : "";
    if (!ans.flows_kept) {
      note.textContent = "Raw flows of that time are no longer kept (raw retention); the NAT mappings above are the record.";
    } else if (!ans.flows.length) {
      note.textContent = ans.matches.length ? "No raw flow of these mappings in the window." : "No mapping, so no flow to show.";
    }
    show(note, !ans.flows_kept || !ans.flows.length);
    show(document.getElementById("evidence").closest(".scroll"), ans.flows.length > 0);
    clear(tb);
    ans.flows.forEach((f) => tb.append(el("tr", null,
      timeCell(f.start, "start"),
      el("td", null, names[f.router_id] || String(f.router_id || "")),
      el("td", null, endpoint(f.src, f.src_port)), el("td", null, endpoint(f.dst, f.dst_port)),
      el("td", null, f.proto), el("td", { class: "num" }, bytes(f.bytes)), el("td", { class: "num" }, count(f.packets)),
      el("td", null, f.direction), el("td", null, f.subscriber || ""))));
  }

  // who asks who had addr at the form's time, and shows the answer.
  async function who(addr) {
    show(whoErr, false);
    const q = new URLSearchParams();
    q.set("address", addr);
    ["at", "tz"].forEach((k) => { const v = form.elements[k].value.trim(); if (v) q.set(k, v); });
    try {
      const h = await api("/subscribers/at?" + q);
      document.getElementById("who-message").textContent = h.message;
      const tb = document.querySelector("#who-facts tbody");
      clear(tb);
      kv(tb, "Address", h.address);
      kv(tb, "Time", timeCell(h.at));
      kv(tb, "Holder", el("td", { class: "strong holder" }, h.found ? h.subscriber : "nobody"));
      if (h.found) {
        if (h.customer_id) kv(tb, "Customer ID", h.customer_id);
        if (h.source) kv(tb, "Learned from", h.source + (h.router ? " on " + h.router : ""));
        if (h.prefix) kv(tb, "Prefix", h.prefix);
        if (h.from) kv(tb, "Held from", timeCell(h.from));
        kv(tb, "Held until", h.to ? timeCell(h.to) : el("td", null, "still held"));
      }
      whoForm.dataset.found = h.found ? "1" : "0";
      show(document.getElementById("who-answer"), true);
    } catch (e) {
      whoErr.textContent = "Cannot tell who had " + addr + ": " + e.message; show(whoErr, true);
      show(document.getElementById("who-answer"), false);
    }
  }

  function saveURL(extra) {
    const q = query();
    if (extra) q.set("who", extra);
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }
  function done() { main.dataset.loadedMs = String(Math.round(performance.now())); }

  let loading = 0;
  async function lookup(whoAddr) {
    const mine = ++loading;
    delete main.dataset.loadedMs;
    show(errBox, false);
    const q = query();
    saveURL(whoAddr);
    document.getElementById("lookup-go").disabled = true;
    try {
      const ans = await api("/nat/lookup?" + q);
      if (mine !== loading) return;
      document.getElementById("nat-message").textContent = ans.message;
      answer.dataset.matches = String(ans.matches.length);
      renderQuery(ans);
      renderMatches(ans.matches);
      renderFlows(ans);
      document.getElementById("csv").href = "/api/v1/nat/lookup.csv?" + q;
      const user = document.querySelector("header.top .who");
      document.getElementById("printed").textContent = "Looked up on " + new Date().toISOString().replace(/\.\d+Z$/, "Z") +
        (user ? " by " + user.textContent : "") + " with flowbox: " + location.href;
      show(answer, true);
      // Who had the inside address (or, without a mapping, the address
      // itself: it may be a customer's public address without NAT).
      const addr = whoAddr || (ans.matches.length ? ans.matches[0].inside_address : ans.query.address);
      whoForm.elements.address.value = addr;
      await who(addr);
    } catch (e) {
      if (mine !== loading) return;
      errBox.textContent = "Cannot look up: " + e.message; show(errBox, true);
      show(answer, false);
    } finally {
      document.getElementById("lookup-go").disabled = false;
      if (mine === loading) done();
    }
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); lookup(""); });
  whoForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const addr = whoForm.elements.address.value.trim();
    delete main.dataset.loadedMs;
    saveURL(addr);
    await who(addr);
    done();
  });
  document.getElementById("print").addEventListener("click", () => window.print());
  const start = new URLSearchParams(location.search);
  if (fromURL()) lookup(start.get("who") || "");
  else if (start.get("who") && start.get("at")) who(start.get("who")).then(done);
  else done();
})();
