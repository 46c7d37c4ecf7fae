// Flows page: search with filters, a paginated table and the CSV export.
"use strict";
(function () {
  const { api, el, bytes, count, when, shortWhen, show, clear, emptyRow, localInput } = window.fb;
  const form = document.getElementById("search");
  const tbody = document.querySelector("#flows tbody");
  const errBox = document.getElementById("search-error");
  const pageSize = 100;
  // fields are the filter inputs, named as the API's query parameters.
  const fields = ["router", "host", "local", "remote", "port", "proto", "as", "app", "country", "domain", "subscriber", "iface"];
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
    fields.forEach((k) => { const v = form.elements[k].value.trim(); if (v) q.set(k, v); });
    return q;
  }

  // endpoint writes address and port, with brackets around IPv6.
  function endpoint(addr, port) {
    if (!port) return addr;
    return (addr.includes(":") ? "[" + addr + "]" : addr) + ":" + port;
  }
  // remoteAS names the AS of the flow's remote side: the source of a
  // download, the destination of an upload.
  function remoteAS(f) {
    let n = f.dst_as, name = f.dst_as_name;
    if (f.direction === "download" || f.direction === "router-in" || (!n && f.src_as)) { n = f.src_as; name = f.src_as_name; }
    if (!n) return "";
    return "AS" + n + (name ? " " + name : "");
  }

  // domainCell shows the remote side's domain, with the remote address's
  // full name (or its reverse DNS name, marked) on hover.
  function domainCell(f) {
    const name = f.remote_name ? f.remote_name + (f.remote_name_reverse ? " (reverse DNS, not a visited name)" : "") : "";
    return el("td", { class: "domain", title: name }, f.domain || (f.remote_name_reverse ? "" : f.remote_name || ""));
  }

  // subscriberCell names the customer, or the router for a router's own
  // traffic (direction router-out or router-in).
  function subscriberCell(f) {
    if (f.direction === "router-out" || f.direction === "router-in") {
      return el("td", { class: "subscriber", title: "the router's own traffic" }, f.subscriber || "", " ", el("span", { class: "badge" }, "router"));
    }
    return el("td", { class: "subscriber" }, f.subscriber || "");
  }

  // destinationCell shows the inside address of a NATed flow (the
  // customer a download reached, the one a search for it matches), with
  // the public destination it had before the NAT on hover.
  function destinationCell(f) {
    if (!f.post_nat_dst) return el("td", { class: "dst" }, endpoint(f.dst, f.dst_port));
    return el("td", { class: "dst", title: "before NAT: " + endpoint(f.dst, f.dst_port) },
      endpoint(f.post_nat_dst, f.post_nat_dst_port || f.dst_port), " ", el("span", { class: "badge", title: "after the router's NAT" }, "NAT"));
  }

  async function search() {
    show(errBox, false);
    const q = params();
    // The search lives in the URL: it can be bookmarked, reloaded, shared.
    history.replaceState(null, "", location.pathname + "?" + q.toString());
    document.getElementById("csv").href = "/api/v1/flows.csv?" + q.toString();
    const page = cursors.length - 1;
    q.set("limit", pageSize);
    if (cursors[page]) q.set("cursor", cursors[page]);
    try {
      const res = await api("/flows?" + q.toString());
      clear(tbody);
      if (!res.flows.length) emptyRow(tbody, 12, "No flow matches.");
      res.flows.forEach((f) => {
        const as = remoteAS(f);
        tbody.append(el("tr", null,
          el("td", { title: when(f.start) + " – " + when(f.end) }, shortWhen(f.start)), el("td", null, routerNames[f.router_id] || String(f.router_id || "")),
          el("td", null, endpoint(f.src, f.src_port)), destinationCell(f),
          el("td", null, f.proto), el("td", { class: "num" }, bytes(f.bytes)), el("td", { class: "num" }, count(f.packets)),
          el("td", null, f.direction), subscriberCell(f), el("td", null, f.application || ""), domainCell(f),
          el("td", { title: as }, el("span", { class: "clip" }, as))));
      });
      nextCursor = res.next;
      document.getElementById("prev").disabled = page === 0;
      document.getElementById("next").disabled = !res.next;
      document.getElementById("page-info").textContent = res.flows.length ? "flows " + (page * pageSize + 1) + "–" + (page * pageSize + res.flows.length) : "";
    } catch (e) {
      errBox.textContent = e.message; show(errBox, true);
      emptyRow(tbody, 12, "");
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
    fields.forEach((k) => { if (q.get(k)) form.elements[k].value = q.get(k); });
    if (q.get("from") && q.get("to")) {
      range.value = "custom";
      document.getElementById("f-from").value = localInput(new Date(q.get("from")));
      document.getElementById("f-to").value = localInput(new Date(q.get("to")));
      range.dispatchEvent(new Event("change"));
    } else if (q.get("range") && [...range.options].some((o) => o.value === q.get("range"))) {
      range.value = q.get("range");
    }
    search();
  })();
})();
