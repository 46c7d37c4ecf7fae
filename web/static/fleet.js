// Fleet page: the store's health, the unknown exporters, every router with
// its status, and the "Add router" flow.
"use strict";
(function () {
  const { api, el, bits, count, ago, when, badge, show, clear, emptyRow } = window.fb;
  const tbody = document.querySelector("#fleet tbody");
  const noticeBox = document.getElementById("fleet-notice");

  function notice(text) { noticeBox.textContent = text; show(noticeBox, true); }

  // After a removal the router page comes back here with ?removed=NAME.
  const removed = new URLSearchParams(location.search).get("removed");
  if (removed) {
    notice("Removed " + removed + ".");
    history.replaceState(null, "", location.pathname);
  }

  // rate shows a current rate. They come from the minute rollups, so a
  // router whose first flows are not rolled up yet is online with no rate:
  // that says "soon", not zero.
  function rate(r, text) {
    if (r.status === "online" && r.flows_per_sec === 0) {
      return el("td", { class: "num muted", title: "rates are measured from the minute rollups: they appear within a minute of the first flows" }, "…");
    }
    return el("td", { class: "num" }, text);
  }

  // dropped sums the flows a router's exporters sent that were not stored,
  // by reason (queue_full, write_error, untrusted...).
  function dropped(r) {
    const by = {};
    let n = 0;
    (r.exporters || []).forEach((x) => {
      for (const k in x.flows_dropped) {
        const v = x.flows_dropped[k];
        if (v > 0) { by[k] = (by[k] || 0) + v; n += v; }
      }
    });
    const why = Object.keys(by).sort().map((k) => k.replace(/_/g, " ") + " " + by[k]).join(", ");
    return el("td", { class: n ? "num opt bad" : "num opt", title: why || null, dataset: { dropped: n } }, String(n));
  }

  // coverageCell shows a router's coverage health: flows over its
  // interface counters (the lower direction), the first cause when low.
  function coverageCell(c) {
    if (!c) return el("td", { class: "coverage opt muted", title: "coverage is not available" }, "—");
    const vals = [c.coverage_in, c.coverage_out].filter((v) => v !== null && v !== undefined);
    const text = vals.length ? Math.min(...vals).toFixed(1) + " %" : "";
    const cls = c.health === "low" ? "warning" : c.health === "ok" ? "ok" : "new";
    let title = c.health === "unknown" ? (c.polls ? "no complete minute of counters yet" : "counters not polled yet") : "";
    if (c.causes && c.causes.length) title = c.causes.join("\n");
    if (c.failures) title += (title ? "\n" : "") + c.failures + " of " + c.polls + " counter polls failed" + (c.last_error ? ": " + c.last_error : "");
    return el("td", { class: "coverage opt", title: title || null, dataset: { health: c.health } }, badge(c.health, cls), text ? " " + text : "");
  }

  function row(r, cov) {
    const name = el("a", { href: "/routers/" + r.id, class: "router-link" }, r.name || r.address);
    const sub = el("div", { class: "muted opt" }, r.identity && r.identity !== r.name ? r.identity + " · " + r.address : r.address);
    const prov = badge(r.state || "new");
    if (r.state_detail) prov.title = r.state_detail;
    return el("tr", { dataset: { id: r.id, status: r.status } },
      el("td", null, name, sub),
      el("td", null, badge(r.status)),
      el("td", { class: "opt" }, r.model || r.board || "—"),
      el("td", { class: "opt" }, r.version || "—"),
      el("td", { class: "opt", title: r.last_flow || "" }, ago(r.last_flow)),
      rate(r, r.flows_per_sec.toFixed(1)),
      rate(r, bits(r.bits_in_per_sec)),
      rate(r, bits(r.bits_out_per_sec)),
      coverageCell(cov),
      el("td", { class: "num opt" }, String(r.lost_flows)),
      dropped(r),
      el("td", { class: "opt" }, badge(r.template_state, r.template_state === "received" ? "ok" : r.template_state), r.templates ? " " + r.templates : ""),
      el("td", { class: "opt" }, prov));
  }

  async function loadRouters() {
    try {
      const [routers, cov] = await Promise.all([api("/routers"), api("/coverage").catch(() => null)]);
      if (!routers.length) { emptyRow(tbody, 13, "No router yet: use “Add router”."); return; }
      const byID = {};
      ((cov && cov.routers) || []).forEach((c) => { byID[c.router_id] = c; });
      clear(tbody);
      routers.forEach((r) => tbody.append(row(r, byID[r.id])));
    } catch (e) {
      emptyRow(tbody, 13, "Cannot load the fleet: " + e.message);
    }
  }

  // The store banner: shown only while the store's writer fails.
  const storeAlert = document.getElementById("store-alert");
  function renderStore(st) {
    show(storeAlert, !st.ok || !!st.pack_error || !!st.rollup_error || st.spilled_flows > 0);
    clear(storeAlert);
    const spill = st.spilled_flows > 0 ? el("div", null, Number(st.spilled_flows).toLocaleString() +
      " flows wait on disk to be written to ClickHouse (" + mib(st.spilled_bytes) + " of " + mib(st.spill_capacity) +
      "); once it is full, flows are dropped.") : null;
    if (st.ok) {
      if (spill) {
        storeAlert.append(el("strong", null, "Catching up: "), spill);
      }
      if (st.pack_error) {
        storeAlert.append(el("strong", null, "Raw flows are not being packed: "), st.pack_error,
          " (" + Number(st.pack_errors).toLocaleString() + " failed attempts). They stay readable, but take more disk and scan slower.");
      }
      if (st.rollup_error) {
        storeAlert.append(el("strong", null, "Top-N lists are not being rolled up: "), st.rollup_error,
          " (" + Number(st.rollup_errors).toLocaleString() + " failed rounds). Lists over longer ranges are read from raw flows meanwhile.");
      }
      return;
    }
    storeAlert.append(el("strong", null, "Flows are not being stored: "), st.error || "the store does not write",
      st.since ? el("span", { title: st.since }, " since " + when(st.since) + " (" + ago(st.since) + ")") : "",
      "; " + Number(st.dropped_flows).toLocaleString() + " flows dropped.");
    if (spill) {
      storeAlert.append(spill);
    }
    if (st.queue_capacity) {
      storeAlert.append(el("div", { class: "small-print" }, "Write queue: " + st.queue_length + " of " + st.queue_capacity + " batches."));
    }
  }

  function mib(n) {
    return (Number(n) / 1048576).toLocaleString(undefined, { maximumFractionDigits: 1 }) + " MiB";
  }

  // Unknown exporters: sources that send flows but are neither an
  // onboarded router nor allowed. An accepted one stays hidden until the
  // collector reports it trusted (at its next datagram).
  const unknownCard = document.getElementById("unknown-card");
  const unknownBody = document.querySelector("#unknown tbody");
  const unknownMore = document.getElementById("unknown-more");
  const unknownErr = document.getElementById("unknown-error");
  const accepted = new Set();
  const maxUnknown = 20;

  function hostPrefix(addr) { return addr + (addr.includes(":") ? "/128" : "/32"); }

  async function accept(x, btn) {
    btn.disabled = true;
    show(unknownErr, false);
    try {
      const res = await api("/exporters/allowed", { method: "POST", body: { prefix: hostPrefix(x.exporter) } });
      accepted.add(x.exporter);
      notice("Accepted " + res.prefix + ": flows from it are stored from now on.");
      loadStatus();
    } catch (e) {
      unknownErr.textContent = "Cannot accept " + x.exporter + ": " + e.message;
      show(unknownErr, true);
      btn.disabled = false;
    }
  }

  function unknownRow(x) {
    const ob = el("button", { type: "button", class: "onboard needs-operator", title: "Add it as a router: flowbox configures its traffic-flow" }, "Onboard");
    ob.addEventListener("click", () => openAdd(x.exporter));
    const ac = el("button", { type: "button", class: "accept needs-operator", title: "Store its flows without onboarding it" }, "Accept");
    ac.addEventListener("click", () => accept(x, ac));
    // Phones show the last seen time under the address.
    return el("tr", { dataset: { exporter: x.exporter } },
      el("td", null, x.exporter, el("div", { class: "muted phone" }, ago(x.last_seen))),
      el("td", { class: "num opt" }, count(x.packets)),
      el("td", { class: "num", title: "counted, not stored" }, count(x.flows_received)),
      el("td", { class: "opt", title: x.first_seen || "" }, ago(x.first_seen)),
      el("td", { class: "opt", title: x.last_seen || "" }, ago(x.last_seen)),
      el("td", null, el("div", { class: "actions" }, ob, ac)));
  }

  function renderUnknown(list) {
    const seen = new Set(list.map((x) => x.exporter));
    accepted.forEach((a) => { if (!seen.has(a)) accepted.delete(a); });
    list = list.filter((x) => !accepted.has(x.exporter));
    show(unknownCard, list.length > 0);
    list.sort((a, b) => (b.last_seen || "").localeCompare(a.last_seen || ""));
    clear(unknownBody);
    list.slice(0, maxUnknown).forEach((x) => unknownBody.append(unknownRow(x)));
    const more = list.length - maxUnknown;
    unknownMore.textContent = more > 0 ? more + " more, heard less recently (GET /api/v1/exporters lists every exporter)." : "";
    show(unknownMore, more > 0);
  }

  async function loadStatus() {
    try {
      const st = await api("/status");
      renderStore(st.store);
      renderUnknown(st.unknown_exporters || []);
    } catch (e) {
      // The fleet table says when the server cannot be reached.
    }
  }

  function load() { return Promise.all([loadRouters(), loadStatus()]); }

  // The "Add router" flow: connect -> plan -> apply -> verify.
  const card = document.getElementById("add-card");
  const form = document.getElementById("add-form");
  const planBox = document.getElementById("add-plan");
  const result = document.getElementById("add-result");
  const errBox = document.getElementById("add-error");
  let added = null;

  function step(n) {
    document.querySelectorAll("#add-steps li").forEach((li) => {
      const s = Number(li.dataset.step);
      li.className = s < n ? "done" : s === n ? "on" : "";
    });
  }
  function fail(msg) { errBox.textContent = msg; show(errBox, true); }
  // The plain API is an explicit choice, with its warning.
  const plainWarning = document.getElementById("add-plain-warning");
  form.querySelectorAll('input[name="api"]').forEach((r) => r.addEventListener("change", () => {
    show(plainWarning, form.api.value === "plain");
  }));
  function reset() {
    form.reset(); added = null; step(1); show(plainWarning, false);
    show(form, true); show(planBox, false); show(result, false); show(errBox, false);
    document.getElementById("add-apply").disabled = false;
  }

  // openAdd opens the form, with an address (an unknown exporter's: it is
  // usually the router's) or empty.
  function openAdd(address) {
    reset(); show(card, true);
    if (address) {
      form.address.value = address;
      form.password.focus();
      card.scrollIntoView({ block: "nearest" });
    } else {
      form.address.focus();
    }
  }

  document.getElementById("add-open").addEventListener("click", () => openAdd(""));
  document.getElementById("add-cancel").addEventListener("click", () => show(card, false));
  document.getElementById("add-done").addEventListener("click", () => { show(card, false); load(); });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(errBox, false);
    const btn = document.getElementById("add-connect");
    btn.disabled = true; btn.textContent = "Connecting…";
    try {
      const res = await api("/routers", { method: "POST", body: {
        address: form.address.value.trim(), name: form.name.value.trim(), username: form.username.value,
        password: form.password.value, tls: form.api.value !== "plain", create_user: form.create_user.checked } });
      form.password.value = "";
      added = res.router;
      renderPlan(res.plan);
      show(form, false); show(planBox, true); step(2);
      load();
    } catch (e) {
      fail(e.message);
    } finally {
      btn.disabled = false; btn.textContent = "Connect";
    }
  });

  function renderPlan(plan) {
    document.getElementById("add-plan-summary").textContent =
      (added.identity || added.name) + " (" + [added.model, added.version].filter(Boolean).join(", ") + "): " + (plan.summary || "");
    // Trust on first use: the operator sees which certificate was pinned.
    const fp = document.getElementById("add-fingerprint");
    fp.textContent = added.tls_fingerprint ? "API-SSL certificate pinned, SHA-256 " + added.tls_fingerprint : "";
    show(fp, !!added.tls_fingerprint);
    const tb = document.querySelector("#add-plan-table tbody");
    clear(tb);
    plan.changes.forEach((c) => {
      const none = c.old === "" || c.old === "(none)";
      tb.append(el("tr", { class: c.skip ? "skip" : "" },
        el("td", null, c.path), el("td", { class: none ? "old none" : "old" }, none ? "—" : c.old),
        el("td", { class: "new" }, c.skip ? "already set" : c.new)));
    });
    if (!plan.changes.length) emptyRow(tb, 3, "Nothing to change.");
  }

  document.getElementById("add-apply").addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    show(errBox, false);
    clear(result); show(result, true);
    result.append(el("p", null, "Applying…"));
    try {
      const run = await api("/routers/" + added.id + "/apply", { method: "POST" });
      step(4);
      clear(result);
      result.append(el("p", { class: "apply-result" }, badge(run.ok ? "ok" : "error"), " Apply: " + (run.summary || run.error || "")));
      const vp = el("p", { class: "verify-result" }, "Verifying (waiting for flows)…");
      result.append(vp);
      await verify(vp, 0);
    } catch (e) {
      fail(e.message);
      ev.target.disabled = false;
    }
  });

  // verify asks the server to verify, and repeats a few times while flows
  // have not arrived yet.
  async function verify(vp, attempt) {
    try {
      const run = await api("/routers/" + added.id + "/verify", { method: "POST" });
      clear(vp);
      vp.append(badge(run.ok ? "ok" : "error"), " Verify: " + (run.summary || run.error || ""));
      if (run.ok) {
        vp.append(" ", el("a", { href: "/routers/" + added.id }, "Open the router’s page"));
        step(5);
      } else if (attempt < 5) {
        setTimeout(() => verify(vp, attempt + 1), 3000);
      }
    } catch (e) {
      clear(vp); vp.append(badge("error"), " Verify: " + e.message);
    }
    load();
  }

  load();
  setInterval(() => { if (!document.hidden) load(); }, 10000);
})();
