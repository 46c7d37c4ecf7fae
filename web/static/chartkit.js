// Helpers shared by the traffic charts (router page, dashboard): y-axis
// labels that never repeat, the "collecting since" note, the buckets not
// known yet.
"use strict";
(function () {
  const units = ["", "k", "M", "G", "T", "P"];

  // axisBits labels the y ticks of a bits/s axis in one unit (that of the
  // largest tick) with as many decimals as the tick spacing needs, so that
  // two ticks never read the same ("1 b/s, 1 b/s, 0 b/s").
  function axisBits(u, splits) {
    const top = Math.max(...splits.map((v) => Math.abs(v)), 0);
    let i = 0, div = 1;
    while (top / div >= 1000 && i < units.length - 1) { div *= 1000; i++; }
    let gap = Infinity;
    for (let k = 1; k < splits.length; k++) gap = Math.min(gap, Math.abs(splits[k] - splits[k - 1]) / div);
    let digits = 0;
    while (digits < 6 && isFinite(gap) && gap > 0 && Math.round(gap * 10 ** digits) < 1) digits++;
    // One more digit when the gap is not a whole number of the last digit.
    if (isFinite(gap) && gap > 0 && digits < 6 && Math.abs(gap * 10 ** digits - Math.round(gap * 10 ** digits)) > 1e-6) digits++;
    return splits.map((v) => (v / div).toFixed(digits) + " " + units[i] + "b/s");
  }

  // yRange starts the y scale at 0 with room above the largest value; a
  // chart without any value gets no fake scale (callers show a note).
  function yRange(u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; }

  // settled hides the buckets whose value is not known yet, so that a
  // line does not dive at its right end: the bucket still open (it ends
  // after the answer), and, from the rollups (written once a minute), a
  // zero in a bucket that ended within the last minute.
  function settled(series, values) {
    const lag = series.resolution === "raw" ? 0 : 60;
    return values.map((v, i) => {
      const end = series.times[i] + series.step;
      if (end > series.now || (v === 0 && end > series.now - lag)) return null;
      return v;
    });
  }

  // sinceText says when the data starts: "13:05" today, "Mar 3 13:05"
  // another day (the browser's zone).
  function sinceText(unix) {
    const d = new Date(unix * 1000), now = new Date();
    const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    if (d.toDateString() === now.toDateString()) return hm;
    return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " + hm;
  }

  // stepText names a bucket size: "1 min", "30 min", "3 h".
  function stepText(step) { return step >= 3600 ? step / 3600 + " h" : step / 60 + " min"; }

  window.fbChart = { axisBits, yRange, settled, sinceText, stepText };
})();
