// Flows page: search with filters, a paginated table and the CSV export.
"use strict";
(function () {
  const { api, el, bytes, when, show, clear, emptyRow, localInput } = window.fb;
  const form = document.getElementById("search");
  const tbody = document.querySelector("#flows tbody");
  const errBox = document.getElementById("search-error");
  const pageSize = 100;
  // cursors[i] is the cursor of page i (the first page has none).
  let cursors = [""];
  const routerNames = {};

  const range = document.getElementById("f-range");
  range.addEventListener("change", () => {
    const custom = range.value === "custom";
    document.querySelectorAll("#search .custom").forEach((l) => show(l, custom));
    if (custom && !document.getElementById("f-from").value) {
      const to = new Date();
      document.getElementById("f-from").value = localInput(new Date(to - 3600e3));
      document.getElementById("f-to").value = localInput(to);
    }
  });

  function params() {
    const q = new URLSearchParams();
    if (range.value === "custom") {
      q.set("from", new Date(document.getElementById("f-from").value).toISOString().replace(/\.\d+Z$/, "Z"));
      q.set("to", new Date(document.getElementById("f-to").value).toISOString().replace(/\.\d+Z$/, "Z"));
    } else q.set("range", range.value);
    ["router", "host", "port", "proto", "as"].forEach((k) => { const v = form.elements[k].value.trim(); if (v) q.set(k, v); });
    return q;
  }

  async function search() {
    show(errBox, false);
    const q = params();
    document.getElementById("csv").href = "/api/v1/flows.csv?" + q.toString();
    const page = cursors.length - 1;
    q.set("limit", pageSize);
    if (cursors[page]) q.set("cursor", cursors[page]);
    try {
      const res = await api("/flows?" + q.toString());
      clear(tbody);
      if (!res.flows.length) emptyRow(tbody, 10, "No flow matches.");
      res.flows.forEach((f) => tbody.append(el("tr", null,
        el("td", { title: f.start }, when(f.start)), el("td", null, routerNames[f.router_id] || String(f.router_id || "")),
        el("td", null, f.src + (f.src_port ? ":" + f.src_port : "")), el("td", null, f.dst + (f.dst_port ? ":" + f.dst_port : "")),
        el("td", null, f.proto), el("td", { class: "num" }, bytes(f.bytes)), el("td", { class: "num" }, String(f.packets)),
        el("td", null, f.direction), el("td", null, f.subscriber || ""), el("td", null, f.application || ""))));
      nextCursor = res.next;
      document.getElementById("prev").disabled = page === 0;
      document.getElementById("next").disabled = !res.next;
      document.getElementById("page-info").textContent = res.flows.length ? "flows " + (page * pageSize + 1) + "–" + (page * pageSize + res.flows.length) : "";
    } catch (e) {
      errBox.textContent = e.message; show(errBox, true);
      emptyRow(tbody, 10, "");
    }
  }

  let nextCursor = "";
  form.addEventListener("submit", (ev) => { ev.preventDefault(); cursors = [""]; search(); });
  document.getElementById("prev").addEventListener("click", () => { if (cursors.length > 1) cursors.pop(); search(); });
  document.getElementById("next").addEventListener("click", () => { if (nextCursor) { cursors.push(nextCursor); search(); } });

  (async function init() {
    try {
      const routers = await api("/routers");
      const sel = document.getElementById("f-router");
      routers.forEach((r) => { routerNames[r.id] = r.name; sel.append(el("option", { value: r.id }, r.name)); });
    } catch (e) { /* the search reports errors */ }
    const q = new URLSearchParams(location.search);
    ["router", "host", "port", "proto", "as"].forEach((k) => { if (q.get(k)) form.elements[k].value = q.get(k); });
    search();
  })();
})();
