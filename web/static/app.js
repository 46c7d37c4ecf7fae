// flowbox console: helpers shared by the pages (no framework).
"use strict";
(function () {
  // api calls the JSON API and returns the decoded answer, or throws an
  // Error carrying the server's {"error": ...} message.
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (opts.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const res = await fetch("/api/v1" + path, init);
    if (res.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("session expired");
    }
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((data && data.error) || (res.status + " " + res.statusText));
    return data;
  }

  // el builds an element: el("td", {class: "num"}, "text", child...).
  function el(tag, attrs) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k in attrs) {
        const v = attrs[k];
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "text") e.textContent = v;
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else if (k === "dataset") Object.assign(e.dataset, v);
        else e.setAttribute(k, v === true ? "" : v);
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function scale(v, unit, base) {
    const units = ["", "k", "M", "G", "T", "P"];
    let i = 0;
    v = Number(v) || 0;
    while (Math.abs(v) >= base && i < units.length - 1) { v /= base; i++; }
    const digits = v >= 100 || i === 0 ? 0 : v >= 10 ? 1 : 2;
    return v.toFixed(digits) + " " + units[i] + unit;
  }
  const bits = (v) => scale(v, "b/s", 1000);
  const bytes = (v) => scale(v, "B", 1000);
  const count = (v) => scale(v, "", 1000).trim();

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString();
  }
  // shortWhen is the time alone for today, else the date without the year
  // (the year too when it is not this one).
  function shortWhen(iso) {
    if (!iso) return "";
    const d = new Date(iso), now = new Date();
    if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString();
    const opts = { month: "short", day: "numeric", hour: "numeric", minute: "2-digit", second: "2-digit" };
    if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
    return d.toLocaleString(undefined, opts);
  }
  function badge(text, cls) { return el("span", { class: "badge " + (cls || text) }, text); }
  function show(node, on) { node.classList.toggle("hidden", !on); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function emptyRow(tbody, cols, text) {
    clear(tbody);
    tbody.append(el("tr", null, el("td", { colspan: cols, class: "muted" }, text)));
  }
  // localInput formats a Date for <input type="datetime-local">.
  function localInput(d) {
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
  }

  // role is the user's role (layout.html's <body data-role>); can(r) says
  // whether it may do what role r may. Scripts that build buttons for
  // changes check it (or give them the class needs-operator/needs-admin,
  // which app.css hides); the API refuses them anyway.
  const roleRank = { viewer: 1, operator: 2, admin: 3 };
  const role = document.body.dataset.role || "";
  function can(r) { return (roleRank[role] || 0) >= (roleRank[r] || 99); }

  window.fb = { api, el, bits, bytes, count, ago, when, shortWhen, badge, show, clear, emptyRow, localInput, role, can };
})();
