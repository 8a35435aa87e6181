/* Grouped lines: a group's runs drawn as their mean, in a band of ±1 standard deviation or
 * from min to max, on the compare page and in report chart blocks.
 *
 * Labbook.groupTraces(lines, options) -> Plotly traces, three per group in group order:
 *   [lower edge, upper edge (filled down to the lower one), mean line].
 *   lines: [{x: [...], y: [...], groups: ["0.001", ...], color}] one per run, y already
 *     smoothed when smoothing is on; x numbers or Dates, in any order; null y is a gap.
 *   options: {band: "std" | "minmax" | "none", markedUpTo}
 * A run belongs to every group it names (a run with two tags is in both). Each group's runs
 * are placed on a common x grid (the union of their x values, or GRID evenly spaced values
 * when that is longer); a run counts at x only within its own first and last x (it is not
 * extended past where it stopped), its value there interpolated between its two nearest
 * points. The standard deviation is the sample one (n - 1; 0 for a single run), as the bar
 * panels' error bars. A group takes the colour of its first run, so groups keep colours
 * that no other line on the chart has. figureGroups needs smoothing.js and chart_tools.js.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const GRID = 500;
  const BAND_OPACITY = 0.18;
  const BANDS = ["std", "minmax", "none"];

  function toNumber(x) {
    return x instanceof Date ? x.getTime() : x;
  }

  /* A run's points with a finite x and y, sorted by x: [[x, y], ...]. */
  function points(line) {
    const found = [];
    line.x.forEach((x, i) => {
      const at = toNumber(x);
      const y = line.y[i];
      if (typeof at === "number" && isFinite(at) && typeof y === "number" && isFinite(y)) found.push([at, y]);
    });
    return found.sort((a, b) => a[0] - b[0]);
  }

  /* The run's value at x, interpolated; undefined outside its range. */
  function valueAt(sorted, x) {
    const n = sorted.length;
    if (n === 0 || x < sorted[0][0] || x > sorted[n - 1][0]) return undefined;
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid][0] <= x) lo = mid;
      else hi = mid;
    }
    const [x0, y0] = sorted[lo];
    const [x1, y1] = sorted[hi];
    if (x1 === x0 || x === x0) return y0;
    if (x === x1) return y1;
    return y0 + ((y1 - y0) * (x - x0)) / (x1 - x0);
  }

  function grid(members) {
    const xs = new Set();
    members.forEach((sorted) => sorted.forEach((p) => xs.add(p[0])));
    const all = [...xs].sort((a, b) => a - b);
    if (all.length <= GRID) return all;
    const first = all[0];
    const span = all[all.length - 1] - first;
    return Array.from({ length: GRID }, (_, i) => first + (span * i) / (GRID - 1));
  }

  /* Mean, sample standard deviation, min, max and count of the group at each x. */
  function aggregate(members, xs) {
    const out = { x: [], mean: [], std: [], min: [], max: [], n: [] };
    xs.forEach((x) => {
      const values = [];
      members.forEach((sorted) => {
        const v = valueAt(sorted, x);
        if (v !== undefined) values.push(v);
      });
      if (values.length === 0) return;
      const n = values.length;
      const mean = values.reduce((a, b) => a + b, 0) / n;
      const variance = n > 1 ? values.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1) : 0;
      out.x.push(x);
      out.mean.push(mean);
      out.std.push(Math.sqrt(variance));
      out.min.push(Math.min(...values));
      out.max.push(Math.max(...values));
      out.n.push(n);
    });
    return out;
  }

  function translucent(color, alpha) {
    const hex = /^#([0-9a-f]{6})$/i.exec(color || "");
    if (!hex) return color;
    const value = parseInt(hex[1], 16);
    return "rgba(" + (value >> 16) + "," + ((value >> 8) & 255) + "," + (value & 255) + "," + alpha + ")";
  }

  /* Group names in order: numbers by value (1e-4 before 1e-3), then the others by name, as the
   * bar panels order them; "(none)" last. */
  function order(a, b) {
    const none = "(none)";
    if (a === none || b === none) return (a === none) - (b === none);
    const x = Number(a);
    const y = Number(b);
    const xNumber = a.trim() !== "" && isFinite(x);
    const yNumber = b.trim() !== "" && isFinite(y);
    if (xNumber && yNumber) return x - y;
    if (xNumber !== yNumber) return xNumber ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }

  /* The groups of a chart built on the server (a report's chart block): its traces are the
   * runs' lines, each naming its groups in meta.groups; grouping is the layout's meta
   * ({group_by, band, marked_up_to}); options {smoothing, x} as the block says. With
   * smoothing, each run's line is smoothed before the groups are taken (smoothing.js). */
  Labbook.figureGroups = function (traces, grouping, options) {
    const weight = options.smoothing || 0;
    const lines = traces.map((trace) => ({
      x: options.x === "time" ? trace.x.map((x) => new Date(x)) : Labbook.placedX(trace), // chart_tools.js
      y: weight > 0 ? Labbook.smooth(trace.y, weight) : trace.y,
      groups: trace.meta.groups,
      color: trace.line.color,
    }));
    return Labbook.groupTraces(lines, { band: grouping.band, markedUpTo: grouping.marked_up_to });
  };


  Labbook.groupTraces = function (lines, options) {
    const band = BANDS.includes(options.band) ? options.band : "std";
    const dates = lines.some((line) => line.x.some((x) => x instanceof Date));
    const groups = new Map(); // name -> {color, members}
    lines.forEach((line) => {
      const sorted = points(line);
      (line.groups && line.groups.length ? line.groups : ["(none)"]).forEach((name) => {
        if (!groups.has(name)) groups.set(name, { color: line.color, members: [] });
        groups.get(name).members.push(sorted);
      });
    });
    const traces = [];
    [...groups.keys()].sort(order).forEach((name) => {
      const group = groups.get(name);
      const stats = aggregate(group.members, grid(group.members));
      const x = dates ? stats.x.map((t) => new Date(t)) : stats.x;
      let spread = null; // [lower edge, upper edge]
      if (band === "minmax") spread = [stats.min, stats.max];
      if (band === "std") spread = [stats.mean.map((m, i) => m - stats.std[i]), stats.mean.map((m, i) => m + stats.std[i])];
      const edge = { type: "scatter", mode: "lines", line: { width: 0, color: group.color }, showlegend: false, hoverinfo: "skip" };
      traces.push(Object.assign({}, edge, { x: spread ? x : [], y: spread ? spread[0] : [], name: name + " low" }));
      traces.push(
        Object.assign({}, edge, {
          x: spread ? x : [],
          y: spread ? spread[1] : [],
          name: name + " high",
          fill: "tonexty",
          fillcolor: translucent(group.color, BAND_OPACITY),
        }),
      );
      const runs = group.members.length;
      traces.push({
        type: "scatter",
        mode: x.length <= (options.markedUpTo || 0) ? "lines+markers" : "lines",
        x: x,
        y: stats.mean,
        name: name + " (" + runs + " run" + (runs === 1 ? "" : "s") + ")",
        line: { color: group.color, width: 2 },
        marker: { color: group.color, size: 5 },
        customdata: stats.n,
        meta: { group: name, runs: runs },
        hoverinfo: "none", // chart_tools.js lists the groups nearest the cursor
      });
    });
    return traces;
  };
})();
