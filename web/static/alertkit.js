// Alerts: helpers shared by the Alerts pages, and the banner of the Fleet
// and router pages, which polls the active alerts.
"use strict";
(function () {
  const { api, el, bits, count, show, clear } = window.fb;

  const severityRank = { critical: 0, warning: 1, info: 2 };
  // byUrgency orders alerts: critical first, then the newest.
  function byUrgency(a, b) {
    const s = (severityRank[a.severity] ?? 3) - (severityRank[b.severity] ?? 3);
    return s || Date.parse(b.started) - Date.parse(a.started);
  }

  // duration writes seconds as "45 s", "12 min", "2 h 5 min", "3 d 4 h".
  function duration(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 90) return sec + " s";
    const m = Math.round(sec / 60);
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60), mm = m % 60;
    if (h < 48) return h + " h" + (mm ? " " + mm + " min" : "");
    const d = Math.floor(h / 24), hh = h % 24;
    return d + " d" + (hh ? " " + hh + " h" : "");
  }
  // lasted is how long an alert lasted, or has lasted so far.
  function lasted(a) {
    const end = a.ended ? Date.parse(a.ended) : Date.now();
    return duration((end - Date.parse(a.started)) / 1000);
  }
  // target names the address and its subscriber: "10.0.0.6 (bob)".
  function target(a) { return a.target + (a.subscriber ? " (" + a.subscriber + ")" : ""); }
  // peak is the alert's main peak, human-readable: bit/s when known, else
  // packets or flows per second.
  function peak(a) {
    if (a.peak_bps > 0) return bits(a.peak_bps);
    if (a.peak_pps > 0) return count(a.peak_pps) + " pkt/s";
    if (a.peak_flows_per_s > 0) return count(a.peak_flows_per_s) + " flows/s";
    return "—";
  }
  const directions = { in: "inbound", out: "outbound" };
  function direction(a) { return directions[a.direction] || "—"; }
  function severity(a) { return el("span", { class: "badge " + a.severity }, a.severity); }
  // isAddress tells an address target from a router or an interface.
  function isAddress(t) { return /^\d{1,3}(\.\d{1,3}){3}$/.test(t) || /^[0-9a-fA-F:.]+$/.test(t) && t.includes(":"); }

  // The banner: "2 active alerts: udp-amplification on 10.0.0.6 (bob),
  // port-scan on 10.0.1.7 · Open Alerts", on the router page only the
  // router's own. It polls, so that it comes and goes without a reload.
  const banner = document.getElementById("alerts-banner");
  const maxListed = 3;
  function renderBanner(alerts) {
    const routerID = Number(document.getElementById("main").dataset.routerId || 0);
    if (routerID) alerts = alerts.filter((a) => a.router_id === routerID);
    show(banner, alerts.length > 0);
    banner.dataset.count = String(alerts.length);
    if (!alerts.length) return;
    alerts.sort(byUrgency);
    banner.classList.toggle("warn", !alerts.some((a) => a.severity === "critical"));
    clear(banner);
    banner.append(el("strong", null, alerts.length + (alerts.length === 1 ? " active alert" : " active alerts") + ": "));
    alerts.slice(0, maxListed).forEach((a, i) => {
      if (i) banner.append(", ");
      banner.append(el("a", { href: "/alerts/" + a.id, dataset: { id: a.id } }, a.kind + " on " + target(a)));
    });
    if (alerts.length > maxListed) banner.append(" and " + (alerts.length - maxListed) + " more");
    banner.append(" · ", el("a", { href: "/alerts", class: "all" }, "Open Alerts"));
  }
  async function pollBanner() {
    try {
      renderBanner(await api("/alerts?active=1"));
    } catch (e) {
      show(banner, false); // alerts disabled, or the server unreachable: the page says the latter
    }
  }
  if (banner) {
    pollBanner();
    setInterval(() => { if (!document.hidden) pollBanner(); }, 15000);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) pollBanner(); });
  }

  window.fbAlerts = { byUrgency, duration, lasted, target, peak, direction, severity, isAddress };
})();
