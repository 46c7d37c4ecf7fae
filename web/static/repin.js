// Router page: re-pin the router's API-SSL certificate. The "Re-pin
// certificate…" button shows, for routers onboarded over API-SSL, the
// pinned fingerprint and the one the router presents now, and pins the new
// one only when the operator confirms.
"use strict";
(function () {
  const { api, el, show, clear } = window.fb;
  const id = document.getElementById("main").dataset.routerId;
  const btn = document.getElementById("btn-repin");
  if (!btn || !id) return;

  // pairs formats a hex SHA-256 as browsers show it: "AB:CD:…".
  function pairs(fp) { return (fp || "").toUpperCase().match(/../g)?.join(":") || "(none)"; }
  // code shows a fingerprint that may wrap after each colon (phones).
  function code(fp) {
    const parts = [];
    pairs(fp).split(":").forEach((p, i) => { if (i) parts.push(":", el("wbr")); parts.push(p); });
    return el("code", { class: "fingerprint" }, ...parts);
  }

  const panel = el("div", { class: "card-inset hidden", id: "repin-panel", "aria-live": "polite" });
  btn.parentNode.after(panel);

  function line(label, fp, cls) {
    return el("p", { class: cls }, label + " ", code(fp));
  }

  async function check() {
    clear(panel); show(panel, true);
    panel.append(el("p", null, "Reading the router's certificate (no login)…"));
    btn.disabled = true;
    try {
      const c = await api("/routers/" + id + "/certificate");
      clear(panel);
      panel.append(line("Pinned:", c.pinned, "repin-old"), line("The router presents now:", c.presented, "repin-new"));
      if (!c.changed) {
        panel.append(el("p", { class: "muted", id: "repin-same" }, "The router presents the pinned certificate: nothing to re-pin."),
          el("div", { class: "actions" }, el("button", { type: "button", onclick: () => show(panel, false) }, "Close")));
        return;
      }
      panel.append(
        el("p", { class: "note warning" }, "The router's certificate changed. Pin the new one only if you replaced it on the router yourself; " +
          "otherwise someone may be intercepting the connection."),
        el("div", { class: "actions" },
          el("button", { type: "button", class: "danger", id: "repin-confirm", onclick: () => repin(c.presented) }, "Pin the new certificate"),
          el("button", { type: "button", id: "repin-cancel", onclick: () => show(panel, false) }, "Cancel")));
    } catch (e) {
      clear(panel);
      panel.append(el("p", { class: "error", role: "alert" }, e.message));
    } finally {
      btn.disabled = false;
    }
  }

  async function repin(fp) {
    const confirm = document.getElementById("repin-confirm");
    if (confirm) confirm.disabled = true;
    try {
      const r = await api("/routers/" + id + "/repin", { method: "POST", body: { fingerprint: fp } });
      clear(panel);
      panel.append(el("p", { id: "repin-done" }, "Pinned the certificate ", code(r.tls_fingerprint), "."));
    } catch (e) {
      panel.append(el("p", { class: "error", role: "alert" }, e.message));
      if (confirm) confirm.disabled = false;
    }
  }

  btn.addEventListener("click", check);
  // Only routers onboarded over API-SSL have a certificate to re-pin.
  api("/routers/" + id).then((r) => { btn.dataset.tls = String(!!r.tls); show(btn, !!r.tls); }).catch(() => {});
})();
