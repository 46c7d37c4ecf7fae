// Settings page: collector and retention (read only), users and API tokens.
"use strict";
(function () {
  const { api, el, when, show, clear, emptyRow } = window.fb;

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

  async function loadSettings() {
    const tb = document.querySelector("#settings tbody");
    try {
      const s = await api("/settings");
      clear(tb);
      const kv = (k, v) => tb.append(el("tr", null, el("th", null, k), el("td", null, v)));
      kv("Collector UDP ports", s.collector_listen.join(", ") || "—");
      kv("Raw flows kept", duration(s.raw_retention));
      kv("Minute rollups kept", duration(s.minute_retention));
      kv("Hour rollups kept", duration(s.hour_retention));
    } catch (e) { emptyRow(tb, 2, "Cannot load: " + e.message); }
  }

  async function loadUsers() {
    const tb = document.querySelector("#users tbody");
    try {
      const users = await api("/users");
      clear(tb);
      users.forEach((u) => tb.append(el("tr", null, el("td", null, u.name), el("td", null, when(u.created_at)),
        el("td", null, el("button", { type: "button", class: "danger", onclick: () => delUser(u.name) }, "Delete")))));
    } catch (e) { emptyRow(tb, 3, "Cannot load: " + e.message); }
  }
  async function delUser(name) {
    if (!confirm("Delete the user " + name + "?")) return;
    try { await api("/users/" + encodeURIComponent(name), { method: "DELETE" }); } catch (e) { fail("user-error", e); }
    loadUsers();
  }
  function fail(id, e) { const b = document.getElementById(id); b.textContent = e.message; show(b, true); }

  document.getElementById("user-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(document.getElementById("user-error"), false);
    const name = document.getElementById("user-name").value.trim();
    const password = document.getElementById("user-password").value;
    try {
      const users = await api("/users");
      if (users.some((u) => u.name === name)) {
        await api("/users/" + encodeURIComponent(name) + "/password", { method: "PUT", body: { password } });
      } else {
        await api("/users", { method: "POST", body: { name, password } });
      }
      ev.target.reset();
    } catch (e) { fail("user-error", e); }
    loadUsers();
  });

  async function loadTokens() {
    const tb = document.querySelector("#tokens tbody");
    try {
      const ts = await api("/tokens");
      if (!ts.length) { emptyRow(tb, 5, "No token."); return; }
      clear(tb);
      ts.forEach((t) => tb.append(el("tr", null, el("td", null, t.name), el("td", null, el("code", null, t.prefix + "…")),
        el("td", null, when(t.created_at)), el("td", null, t.last_used ? when(t.last_used) : "never"),
        el("td", null, el("button", { type: "button", class: "danger", onclick: () => revoke(t) }, "Revoke")))));
    } catch (e) { emptyRow(tb, 5, "Cannot load: " + e.message); }
  }
  async function revoke(t) {
    if (!confirm("Revoke the token " + t.name + "?")) return;
    try { await api("/tokens/" + t.id, { method: "DELETE" }); } catch (e) { fail("token-error", e); }
    loadTokens();
  }
  document.getElementById("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(document.getElementById("token-error"), false);
    try {
      const t = await api("/tokens", { method: "POST", body: { name: document.getElementById("token-name").value.trim() } });
      const box = document.getElementById("token-secret");
      clear(box);
      box.append("Copy this token now, it is not shown again: ", el("code", { id: "new-token" }, t.token));
      show(box, true);
      ev.target.reset();
    } catch (e) { fail("token-error", e); }
    loadTokens();
  });

  loadSettings(); loadUsers(); loadTokens();
})();
