// Settings page: collector and retention (read only), one's password, users
// (admins), API tokens (one's own; admins everybody's) and the audit log
// (admins).
"use strict";
(function () {
  const { api, el, when, show, clear, emptyRow, can } = window.fb;

  // duration turns a Go duration ("48h0m0s") into "48 h", "14 d" or
  // "90 min"; anything else is shown as it is.
  function duration(d) {
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(d || "");
    if (!m || d === "") return d || "—";
    const secs = (Number(m[1] || 0) * 60 + Number(m[2] || 0)) * 60 + Number(m[3] || 0);
    if (secs === 0) return "—";
    if (secs % 86400 === 0 && secs >= 3 * 86400) return secs / 86400 + " d";
    if (secs % 3600 === 0) return secs / 3600 + " h";
    if (secs % 60 === 0) return secs / 60 + " min";
    return d;
  }
  function fail(id, e) { const b = document.getElementById(id); b.textContent = e.message; show(b, true); }

  async function loadSettings() {
    const tb = document.querySelector("#settings tbody");
    try {
      const s = await api("/settings");
      clear(tb);
      const kv = (k, v) => tb.append(el("tr", null, el("th", null, k), el("td", null, v)));
      kv("Collector UDP ports", s.collector_listen.join(", ") || "—");
      if (s.flow_store) kv("Flows stored in", s.flow_store);
      kv("Raw flows kept", duration(s.raw_retention));
      kv("Minute rollups kept", duration(s.minute_retention));
      kv("Hour rollups kept", duration(s.hour_retention));
    } catch (e) { emptyRow(tb, 2, "Cannot load: " + e.message); }
  }

  let me = null;
  document.getElementById("password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(document.getElementById("password-error"), false);
    show(document.getElementById("password-done"), false);
    try {
      if (!me) me = await api("/me");
      await api("/users/" + encodeURIComponent(me.owner) + "/password", { method: "PUT", body: {
        current_password: document.getElementById("current-password").value,
        password: document.getElementById("new-password").value } });
      ev.target.reset();
      const done = document.getElementById("password-done");
      done.textContent = "Password changed.";
      show(done, true);
    } catch (e) { fail("password-error", e); }
  });

  async function loadUsers() {
    const tb = document.querySelector("#users tbody");
    try {
      const users = await api("/users");
      clear(tb);
      users.forEach((u) => {
        const sel = el("select", { "aria-label": "role of " + u.name, class: "user-role" },
          ...["viewer", "operator", "admin"].map((r) => el("option", { selected: r === u.role }, r)));
        sel.addEventListener("change", () => setRole(u.name, sel.value));
        tb.append(el("tr", { dataset: { user: u.name } }, el("td", null, u.name), el("td", null, sel), el("td", null, when(u.created_at)),
          el("td", null, el("button", { type: "button", class: "danger", onclick: () => delUser(u.name) }, "Delete"))));
      });
    } catch (e) { emptyRow(tb, 4, "Cannot load: " + e.message); }
  }
  async function setRole(name, role) {
    show(document.getElementById("user-error"), false);
    try { await api("/users/" + encodeURIComponent(name) + "/role", { method: "PUT", body: { role } }); } catch (e) { fail("user-error", e); }
    loadUsers(); loadTokens(); loadAudit(true);
  }
  async function delUser(name) {
    if (!confirm("Delete the user " + name + " with their API tokens?")) return;
    try { await api("/users/" + encodeURIComponent(name), { method: "DELETE" }); } catch (e) { fail("user-error", e); }
    loadUsers(); loadTokens(); loadAudit(true);
  }
  document.getElementById("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(document.getElementById("user-error"), false);
    const name = document.getElementById("user-name").value.trim();
    const password = document.getElementById("user-password").value;
    const role = document.getElementById("user-role").value;
    try {
      const users = await api("/users");
      if (users.some((u) => u.name === name)) {
        if (!confirm("Reset the password of " + name + "? Their sessions end and their API tokens are revoked.")) return;
        await api("/users/" + encodeURIComponent(name) + "/password", { method: "PUT", body: { password } });
      } else {
        await api("/users", { method: "POST", body: { name, password, role } });
      }
      ev.target.reset();
    } catch (e) { fail("user-error", e); }
    loadUsers(); loadTokens(); loadAudit(true);
  });

  async function loadTokens() {
    const tb = document.querySelector("#tokens tbody");
    try {
      const ts = await api("/tokens");
      if (!ts.length) { emptyRow(tb, 8, "No token."); return; }
      clear(tb);
      ts.forEach((t) => tb.append(el("tr", { dataset: { token: t.name } }, el("td", null, t.name), el("td", null, t.owner || "(none: refused)"),
        el("td", null, t.role), el("td", null, el("code", null, t.prefix + "…")), el("td", null, when(t.created_at)),
        el("td", { class: t.expired ? "error" : "" }, t.expires_at ? (t.expired ? "expired " : "") + when(t.expires_at) : "never"),
        el("td", null, t.last_used ? when(t.last_used) : "never"),
        el("td", null, can("operator") ? el("button", { type: "button", class: "danger", onclick: () => revoke(t) }, "Revoke") : ""))));
    } catch (e) { emptyRow(tb, 8, "Cannot load: " + e.message); }
  }
  async function revoke(t) {
    if (!confirm("Revoke the token " + t.name + "?")) return;
    try { await api("/tokens/" + t.id, { method: "DELETE" }); } catch (e) { fail("token-error", e); }
    loadTokens(); loadAudit(true);
  }
  document.getElementById("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(document.getElementById("token-error"), false);
    const body = { name: document.getElementById("token-name").value.trim() };
    const role = document.getElementById("token-role").value;
    const expires = document.getElementById("token-expires").value;
    const user = document.getElementById("token-user").value.trim();
    if (role) body.role = role;
    if (expires) body.expires_in = expires;
    if (user && can("admin")) body.user = user;
    try {
      const t = await api("/tokens", { method: "POST", body });
      const box = document.getElementById("token-secret");
      clear(box);
      box.append("Copy this token now, it is not shown again: ", el("code", { id: "new-token" }, t.token));
      show(box, true);
      ev.target.reset();
    } catch (e) { fail("token-error", e); }
    loadTokens(); loadAudit(true);
  });

  // The audit log, newest first, a page at a time.
  let auditNext = 0;
  async function loadAudit(reset) {
    if (!can("admin")) return;
    const tb = document.querySelector("#audit tbody");
    const more = document.getElementById("audit-more");
    if (reset) auditNext = 0;
    try {
      const page = await api("/audit?limit=50" + (auditNext ? "&before=" + auditNext : ""));
      if (!auditNext) clear(tb);
      if (!auditNext && !page.entries.length) emptyRow(tb, 6, "Nothing yet.");
      page.entries.forEach((a) => tb.append(el("tr", { class: a.ok ? "" : "fail" },
        el("td", null, when(a.at)), el("td", null, a.actor), el("td", { class: a.ok ? "" : "fail" }, a.action + (a.ok ? "" : " (failed)")),
        el("td", null, a.target || ""), el("td", null, a.detail || ""), el("td", null, a.client || ""))));
      auditNext = page.next;
      show(more, page.next > 0);
      document.getElementById("audit-retention").textContent = "Who changed what, when and from where; kept " +
        duration(page.max_age) + ", at most " + page.max_rows + " entries.";
    } catch (e) { emptyRow(tb, 6, "Cannot load: " + e.message); }
  }
  document.getElementById("audit-more").addEventListener("click", () => loadAudit(false));

  loadSettings(); loadTokens();
  if (can("admin")) { loadUsers(); loadAudit(true); }
})();
