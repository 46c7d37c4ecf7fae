// Router page, coverage card: per interface, the flows over the
// interface counters in each direction, and a warning naming the likely
// cause when the router's flows fall short.
"use strict";
(function () {
  const { api, el, bytes, badge, show, clear, emptyRow } = window.fb;
  const id = document.getElementById("main").dataset.routerId;
  const tbody = document.querySelector("#coverage tbody");
  const warning = document.getElementById("coverage-warning");
  const note = document.getElementById("coverage-note");

  function pct(v, low) {
    if (v === null || v === undefined) return el("td", { class: "num muted", title: "too little traffic to judge" }, "—");
    return el("td", { class: low && v < low ? "num bad" : "num" }, v.toFixed(1) + " %");
  }

  function render(rep) {
    const r = (rep.routers || []).find((x) => String(x.router_id) === String(id));
    const rows = (rep.interfaces || []).filter((x) => String(x.router_id) === String(id));
    note.textContent = "flows over the interface counters, " + new Date(rep.from).toLocaleTimeString() + "–" +
      new Date(rep.to).toLocaleTimeString() + " (low below " + rep.threshold + " %)";
    clear(warning);
    if (r && r.health === "low") {
      warning.append(el("strong", null, "Flows miss part of this router's traffic. "),
        el("span", null, "Likely cause: "), el("ul", { id: "coverage-causes" }, ...r.causes.map((c) => el("li", null, c))));
      show(warning, true);
    } else if (r && r.failures && r.last_error) {
      warning.append(el("strong", null, "Interface counters cannot be read: "), el("span", null, r.last_error +
        " (" + r.failures + " of " + r.polls + " polls failed)"));
      show(warning, true);
    } else {
      show(warning, false);
    }
    if (!rows.length) {
      const why = !r || !r.polls ? "The interface counters have not been polled yet." :
        "No complete minute of counters yet: coverage appears a few minutes after the first polls.";
      emptyRow(tbody, 8, why);
      return;
    }
    clear(tbody);
    rows.forEach((ic) => {
      tbody.append(el("tr", { dataset: { iface: ic.interface, low: ic.low ? "1" : "0" }, class: ic.low ? "low" : null },
        el("td", null, ic.interface, ic.low ? el("span", null, " ", badge("low", "warning")) : ""),
        el("td", { class: "num" }, bytes(ic.flow_bytes_in)),
        el("td", { class: "num opt" }, bytes(ic.counter_bytes_in)),
        pct(ic.coverage_in, rep.threshold),
        el("td", { class: "num" }, bytes(ic.flow_bytes_out)),
        el("td", { class: "num opt" }, bytes(ic.counter_bytes_out)),
        pct(ic.coverage_out, rep.threshold),
        el("td", { class: ic.low ? "diagnosis" : "diagnosis muted" }, ic.diagnosis || "")));
    });
  }

  async function load() {
    try {
      render(await api("/coverage?router=" + encodeURIComponent(id)));
    } catch (e) {
      emptyRow(tbody, 8, "Coverage is not available: " + e.message);
    }
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 60000);
})();
