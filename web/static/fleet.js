// Fleet page: every router with its status, and the "Add router" flow.
"use strict";
(function () {
  const { api, el, bits, ago, badge, show, clear, emptyRow } = window.fb;
  const tbody = document.querySelector("#fleet tbody");

  // After a removal the router page comes back here with ?removed=NAME.
  const removed = new URLSearchParams(location.search).get("removed");
  if (removed) {
    const n = document.getElementById("fleet-notice");
    n.textContent = "Removed " + removed + "."; n.classList.remove("hidden");
    history.replaceState(null, "", "/");
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

  function row(r) {
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
      el("td", { class: "num opt" }, String(r.lost_flows)),
      el("td", { class: "opt" }, badge(r.template_state, r.template_state === "received" ? "ok" : r.template_state), r.templates ? " " + r.templates : ""),
      el("td", { class: "opt" }, prov));
  }

  async function load() {
    try {
      const routers = await api("/routers");
      if (!routers.length) { emptyRow(tbody, 11, "No router yet: use “Add router”."); return; }
      clear(tbody);
      routers.forEach((r) => tbody.append(row(r)));
    } catch (e) {
      emptyRow(tbody, 11, "Cannot load the fleet: " + e.message);
    }
  }

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
  function reset() {
    form.reset(); added = null; step(1);
    show(form, true); show(planBox, false); show(result, false); show(errBox, false);
    document.getElementById("add-apply").disabled = false;
  }

  document.getElementById("add-open").addEventListener("click", () => { reset(); show(card, true); document.getElementById("add-address").focus(); });
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
        password: form.password.value, tls: form.tls.checked } });
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
