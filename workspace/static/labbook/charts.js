/* Labbook metric charts: a grid of Plotly charts, one per metric key, one trace per run.
 *
 * The page renders a card per chart (article.chart-card[data-key] with a div[data-plot])
 * and a JSON config in <script id="charts-config">:
 *   {runs: [{id, name, color, status, start, groups}], charts: [{key, runs: [id, ...], stats,
 *    maxPoints}], histories: "/api/v1/metrics/KEY", maxRuns: 200, runsApi: "/api/v1/runs",
 *    maxPoints: 1000, markedUpTo: 30}
 * A chart's lines come from the histories API in one read (a sweep of 200 runs too), each
 * downsampled on the server to the chart's maxPoints with its spikes kept, when the chart
 * first scrolls into view; zooming in reads the visible step range again at that resolution;
 * points from the websocket extend the traces in place.
 * The page's other scripts share the socket: each message, and each (re)subscription, is
 * dispatched on document as "labbook:live-message" (detail: the message) and
 * "labbook:live-connected".
 *
 * Charts are grouped in sections by the prefix of their key (train/, val/, system/; keys
 * without one first), each collapsible; charts pinned by the reader (per project, in
 * localStorage) come first in a section of their own. The filter box hides the charts, and
 * the sections left empty, that do not match.
 *
 * On the compare page the runs can be grouped (groupBy: group, tags or a config key, each
 * run's groups in runs[].groups): each group is drawn as its mean, in a band of ±1 standard
 * deviation or min to max (bands.js), from the runs' lines as smoothing and the x axis make
 * them; the choice is kept in the page's URL (?group_by=&band=). Live points then redraw a
 * chart at most every GROUP_REDRAW_MS.
 *
 * The x axis is the step, the wall time, the time since each run started, or any metric the
 * charts show ("metric:epoch"): each point is placed at that metric's value at its step,
 * interpolated between the steps where the metric was logged (held at either end).
 *
 * Every redraw goes through Plotly.react on the same div, never a cleared one: clearing
 * the div under a drawn plot leaves Plotly diffing against elements that are gone, and
 * every line vanished until a reload. A single-run chart's stats (min, max, point count;
 * `stats` from the server) follow the live points with its last value.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const STORAGE_KEY = "labbook.chart-controls";
  const COLLAPSED_KEY = "labbook.collapsed-sections";
  const PINNED = "pinned"; // the pinned section's name (a key prefix never is: it has no "/")
  const UNPREFIXED = ""; // the section of keys without a prefix
  const LAST = ["system"]; // prefixes whose section goes last

  function prefixOf(key) {
    const slash = key.indexOf("/");
    return slash > 0 ? key.slice(0, slash) : UNPREFIXED;
  }

  /* Pinned first, then keys without a prefix, the prefixes in order, system last. */
  function sectionOrder(name) {
    if (name === PINNED) return [0, ""];
    if (name === UNPREFIXED) return [1, ""];
    return [LAST.includes(name) ? 3 : 2, name];
  }

  const METRIC_X = "metric:"; // an x-axis mode naming a metric key
  const GROUP_REDRAW_MS = 1000;

  const valueAt = Labbook.valueAt; // chart_tools.js

  function stored(key, fallback) {
    try {
      return JSON.parse(window.localStorage.getItem(key) || "null") || fallback;
    } catch (error) {
      return fallback;
    }
  }

  /* One metric of many runs, in reads of at most config.maxRuns runs (the histories API's
   * limit): a Map of run id -> {steps, values, times, downsampled}; runs without the metric are
   * not in it. */
  async function fetchLines(config, key, runIds, params) {
    const path = key.split("/").map(encodeURIComponent).join("/");
    const found = new Map();
    for (let start = 0; start < runIds.length; start += config.maxRuns) {
      const runs = runIds.slice(start, start + config.maxRuns).join(",");
      const query = new URLSearchParams(Object.assign({ runs: runs }, params)).toString();
      const response = await fetch(config.histories.replace(/KEY$/, path) + "?" + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("histories " + response.status);
      const body = await response.json();
      body.histories.forEach((line) =>
        found.set(line.run, {
          steps: line.steps,
          values: line.values,
          times: line.timestamps,
          downsampled: line.downsampled,
        }),
      );
    }
    return found;
  }

  const NO_POINTS = () => ({ steps: [], values: [], times: [], downsampled: false });

  function numeric(value) {
    return typeof value === "number" ? value : null; // "NaN" / "Infinity": a gap in the line
  }

  /* A value for min and max: NaN counts for neither (as on the server), infinities do. */
  function comparable(value) {
    if (typeof value === "number") return value;
    if (value === "Infinity") return Infinity;
    if (value === "-Infinity") return -Infinity;
    return null;
  }

  const NO_VALUE = "–"; // min and max before any finite value, as the page first shows them
  const LEGEND = { orientation: "v", x: 1.02, xanchor: "left", y: 1, yanchor: "top", font: { size: 10 } };

  const smooth = window.Labbook.smooth; // smoothing.js

  function Grid(root, config) {
    this.root = root;
    this.config = config;
    this.runs = new Map(config.runs.map((run) => [run.id, run]));
    this.charts = new Map();
    this.renders = 0; // charts drawn so far (tests wait on it after moving a control)
    this.groupBy = config.groupBy || ""; // "" draws a line per run
    this.band = config.band || "std";
    this.controls = Object.assign(
      { search: "", log: false, smoothing: 0, x: "step" },
      JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "{}"),
      { search: "" },
    );
    this.observer = new IntersectionObserver(this.onVisible.bind(this), { rootMargin: "400px" });
    this.container = root.querySelector("[data-chart-grid]");
    this.container.classList.replace("chart-grid", "chart-sections");
    this.sections = new Map(); // name -> {details, grid, count}
    this.pinnedKey = "labbook.pinned-charts." + (config.project || "");
    this.pinned = new Set(stored(this.pinnedKey, []));
    this.collapsed = new Set(stored(COLLAPSED_KEY, []));
    config.charts.forEach((spec) => this.addChart(spec.key, spec.runs, spec.stats, spec.maxPoints));
    this.xMetric = null; // {key, series: Map(run id -> {steps, values}), ready: Promise}
    if (this.controls.x.startsWith(METRIC_X)) {
      const key = this.controls.x.slice(METRIC_X.length);
      if (this.charts.has(key)) this.loadX(key);
      else this.controls.x = "step"; // a metric this page does not have
    }
    this.bindControls();
    this.updateCount();
  }

  Grid.prototype.addChart = function (key, runIds, stats, maxPoints) {
    let card = this.root.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (!card) card = this.newCard(key);
    const chart = {
      key: key,
      card: card,
      plot: card.querySelector("[data-plot]"),
      runs: runIds.slice(),
      maxPoints: maxPoints || this.config.maxPoints, // per line (kernel.charts.line_points)
      data: new Map(), // run id -> {steps, values, times, downsampled}
      zoom: null, // {range, data} while zoomed in
      smoothState: new Map(),
      loaded: false,
      loading: false,
      pending: [],
      // min/max/count of every point (not only the drawn ones); null until known: a chart
      // that appeared live counts what its first load reads.
      stats: stats
        ? { min: comparable(stats.min), max: comparable(stats.max), count: stats.count }
        : null,
    };
    this.charts.set(key, chart);
    this.place(chart);
    this.observer.observe(card);
    Labbook.expandable(card, chart.plot, card.querySelector("[data-expand]")); // chart_tools.js
    const pin = card.querySelector("[data-pin]");
    if (pin) pin.addEventListener("click", () => this.togglePin(chart));
    return chart;
  };

  /* Move a chart's card into its section (pinned, or its key's prefix), in key order. */
  Grid.prototype.place = function (chart) {
    const pinned = this.pinned.has(chart.key);
    const section = this.section(pinned ? PINNED : prefixOf(chart.key));
    const pin = chart.card.querySelector("[data-pin]");
    if (pin) {
      pin.textContent = pinned ? "Unpin" : "Pin";
      pin.setAttribute("aria-pressed", String(pinned));
    }
    const after = [...section.grid.children].find((card) => card.dataset.key > chart.key);
    section.grid.insertBefore(chart.card, after || null);
    this.sections.forEach((other, name) => {
      if (other.grid.children.length === 0) {
        other.details.remove();
        this.sections.delete(name);
      }
    });
  };

  Grid.prototype.section = function (name) {
    const found = this.sections.get(name);
    if (found) return found;
    const details = document.createElement("details");
    details.className = "chart-section";
    details.dataset.section = name;
    details.open = !this.collapsed.has(name);
    const summary = document.createElement("summary");
    const title = document.createElement("span");
    title.className = "chart-section-title";
    title.textContent = name === PINNED ? "Pinned" : name === UNPREFIXED ? "Charts" : name + "/";
    const count = document.createElement("span");
    count.className = "muted";
    summary.append(title, " ", count);
    const grid = document.createElement("div");
    grid.className = "chart-grid";
    details.append(summary, grid);
    details.addEventListener("toggle", () => this.onToggle(name, details));
    const section = { details: details, grid: grid, count: count };
    this.sections.set(name, section);
    const key = sectionOrder(name);
    const next = [...this.sections.entries()].find(([other]) => {
      const order = sectionOrder(other);
      return order[0] > key[0] || (order[0] === key[0] && order[1] > key[1]);
    });
    this.container.insertBefore(details, next ? next[1].details : null);
    return section;
  };

  Grid.prototype.onToggle = function (name, details) {
    if (details.open) this.collapsed.delete(name);
    else this.collapsed.add(name);
    window.localStorage.setItem(COLLAPSED_KEY, JSON.stringify([...this.collapsed]));
    if (!details.open) return;
    this.charts.forEach((chart) => {
      // Drawn while the section was closed (or sized before): fit the plot to its box.
      if (chart.loaded && details.contains(chart.card)) window.Plotly.Plots.resize(chart.plot);
    });
  };

  Grid.prototype.togglePin = function (chart) {
    if (this.pinned.has(chart.key)) this.pinned.delete(chart.key);
    else this.pinned.add(chart.key);
    window.localStorage.setItem(this.pinnedKey, JSON.stringify([...this.pinned]));
    this.place(chart);
    this.updateCount();
    if (chart.loaded) window.Plotly.Plots.resize(chart.plot);
  };

  Grid.prototype.newCard = function (key) {
    const template = document.getElementById("chart-card-template");
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.key = key;
    card.querySelector("[data-title]").textContent = key;
    const csv = card.querySelector("[data-csv]");
    if (csv) csv.href = csv.dataset.csv + "?key=" + encodeURIComponent(key);
    const empty = this.root.querySelector("[data-charts-empty]");
    if (empty) empty.remove();
    card.hidden = !this.matches(key);
    return card; // addChart places it in its section
  };

  Grid.prototype.onVisible = function (entries) {
    entries.forEach((entry) => {
      if (!entry.isIntersecting) return;
      this.observer.unobserve(entry.target);
      this.load(this.charts.get(entry.target.dataset.key));
    });
  };

  Grid.prototype.load = async function (chart) {
    if (!chart || chart.loading) return;
    chart.loading = true;
    chart.card.classList.add("is-loading");
    try {
      if (this.xMetric) await this.xMetric.ready;
      chart.timed = this.byTime();
      const params = { max_points: chart.maxPoints, timestamps: String(chart.timed) };
      const loaded = await fetchLines(this.config, chart.key, chart.runs, params);
      chart.runs.forEach((id) => chart.data.set(id, loaded.get(id) || NO_POINTS()));
      if (!chart.stats) chart.stats = this.statsOf(chart);
      chart.loaded = true;
      this.render(chart);
      const pending = chart.pending.splice(0);
      pending.forEach((item) => this.extend(chart, item.run, item.points));
    } catch (error) {
      chart.card.querySelector("[data-plot]").textContent = "Could not load this chart.";
    } finally {
      chart.loading = false;
      chart.card.classList.remove("is-loading");
    }
  };

  /* Read the x-axis metric of every run that logged it (downsampled as charts are: the
   * points between are interpolated). */
  Grid.prototype.loadX = function (key) {
    const chart = this.charts.get(key);
    const series = new Map();
    const ready = fetchLines(this.config, key, chart.runs, { max_points: chart.maxPoints, timestamps: "false" })
      .then((found) => found.forEach((line, id) => series.set(id, { steps: line.steps, values: line.values })))
      .catch(() => {}); // the lines stay off this axis
    this.xMetric = { key: key, series: series, ready: ready };
    return ready;
  };

  /* New points of the x-axis metric, before the points they place (same message). */
  Grid.prototype.extendX = function (runId, points) {
    if (!this.xMetric) return;
    let series = this.xMetric.series.get(runId);
    if (!series) this.xMetric.series.set(runId, (series = { steps: [], values: [] }));
    const last = series.steps.length ? series.steps[series.steps.length - 1] : -Infinity;
    points.steps.forEach((step, i) => {
      if (step <= last) return;
      series.steps.push(step);
      series.values.push(points.values[i]);
    });
  };

  /* Whether the x axis needs the points' timestamps: charts by step or by a metric read their
   * lines without them (about half the bytes), and read them again when the axis turns to time. */
  Grid.prototype.byTime = function () {
    return this.controls.x === "time" || this.controls.x === "relative";
  };

  /* x values of a series for the current x-axis mode. */
  Grid.prototype.xs = function (runId, series) {
    const mode = this.controls.x;
    if (mode === "step") return series.steps.slice();
    if (mode === "time") return series.times.map((t) => new Date(t * 1000));
    if (mode.startsWith(METRIC_X)) {
      const by = this.xMetric && this.xMetric.series.get(runId);
      return series.steps.map((step) => (by ? valueAt(by, step) : null));
    }
    const start = this.runs.get(runId).start;
    return series.times.map((t) => (t - start) / 60);
  };

  /* SVG lines ("scatter"), not WebGL ("scattergl"): WebGL would need 'unsafe-eval' in the
   * Content-Security-Policy (regl compiles its draw calls with Function), and a page runs out
   * of WebGL contexts past about 16 charts. Lines of 1000 downsampled points draw fast in SVG. */
  Grid.prototype.traces = function (chart) {
    if (this.groupBy) return this.groupTraces(chart);
    const weight = this.controls.smoothing;
    const traces = [];
    chart.runs.forEach((id) => {
      const run = this.runs.get(id);
      const series = (chart.zoom && chart.zoom.data.get(id)) || chart.data.get(id);
      const x = this.xs(id, series);
      const y = series.values.map(numeric);
      const state = { last: 0, n: 0 };
      chart.smoothState.set(id, state);
      const name = chart.runs.length > 1 ? run.name : chart.key;
      const mode = y.length <= this.config.markedUpTo ? "lines+markers" : "lines"; // kernel.charts
      traces.push({
        x: x,
        y: y,
        name: name,
        type: "scatter",
        mode: mode,
        marker: { color: run.color, size: 5 },
        line: { color: run.color, width: 1.5 },
        opacity: weight > 0 ? 0.25 : 1,
        showlegend: weight === 0,
        hoverinfo: "none", // chart_tools.js lists the runs nearest the cursor instead
      });
      traces.push({
        x: x,
        y: smooth(y, weight, state),
        name: name + (weight > 0 ? " (smoothed)" : ""),
        type: "scatter",
        mode: mode,
        marker: { color: run.color, size: 6 },
        line: { color: run.color, width: 2 },
        visible: weight > 0,
        showlegend: weight > 0,
        hoverinfo: "skip",
      });
    });
    return traces;
  };

  /* Each group's band edges and mean line (bands.js), from its runs' lines as drawn. */
  Grid.prototype.groupTraces = function (chart) {
    const weight = this.controls.smoothing;
    const lines = chart.runs.map((id) => {
      const run = this.runs.get(id);
      const series = (chart.zoom && chart.zoom.data.get(id)) || chart.data.get(id);
      const y = series.values.map(numeric);
      return {
        x: this.xs(id, series),
        y: weight > 0 ? smooth(y, weight, { last: 0, n: 0 }) : y,
        groups: (run.groups || {})[this.groupBy],
        color: run.color,
      };
    });
    return Labbook.groupTraces(lines, { band: this.band, markedUpTo: this.config.markedUpTo });
  };

  Grid.prototype.layout = function (chart) {
    const titles = { step: "step", time: "time", relative: "minutes since start" };
    const xaxis = {
      title: { text: titles[this.controls.x] || this.controls.x.slice(METRIC_X.length), font: { size: 11 } },
      type: this.controls.x === "time" ? "date" : "linear",
      automargin: true,
    };
    if (chart.zoom) Object.assign(xaxis, { range: chart.zoom.range, autorange: false });
    return {
      // No height: the plot takes its box's (260 px by the CSS, the window's when expanded).
      margin: { l: 50, r: 12, t: 8, b: 36 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 11, color: "#1f2328" },
      xaxis: xaxis,
      yaxis: { type: this.controls.log ? "log" : "linear", automargin: true },
      showlegend: chart.runs.length > 1 || Boolean(this.groupBy),
      // Beside the plot, not under it: the plot keeps its height however many runs there
      // are (Plotly scrolls a legend taller than the plot), and never meets the axis title.
      legend: LEGEND,
      hovermode: "x",
    };
  };

  Grid.prototype.render = function (chart) {
    if (!chart.loaded) return;
    const plot = chart.plot;
    if (!plot.classList.contains("js-plotly-plot")) plot.textContent = ""; // an old error text
    window.Plotly.react(plot, this.traces(chart), this.layout(chart), {
      responsive: true,
      displaylogo: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
    });
    if (!plot.dataset.bound) {
      plot.dataset.bound = "1";
      plot.on("plotly_relayout", (event) => this.onRelayout(chart, event));
      Labbook.hoverList(plot, {
        // Raw traces are even, each followed by its smoothed twin: with smoothing on, the
        // list shows the smoothed value, as the bold line does. Grouped, a group's traces
        // come in threes (band edges, then the mean, which is the one that hovers).
        value: (point) =>
          this.groupBy || this.controls.smoothing === 0 ? point.y : plot.data[point.curveNumber + 1].y[point.pointIndex],
        lines: (curve) => {
          const size = this.groupBy ? 3 : 2;
          return Array.from({ length: size }, (_, i) => curve - (curve % size) + i);
        },
      });
    }
    chart.card.dataset.points = String(this.pointCount(chart));
    chart.card.dataset.traces = String(plot.data.length);
    chart.card.dataset.groups = this.groupBy ? String(plot.data.length / 3) : "";
    this.renders += 1;
    const only = chart.data.get(chart.runs[0]);
    this.showStats(chart, only && only.values.length ? only.values[only.values.length - 1] : undefined);
  };

  Grid.prototype.pointCount = function (chart) {
    let total = 0;
    chart.data.forEach((series) => (total += series.steps.length));
    return total;
  };

  /* Zoom: refetch the visible step range at full resolution; double-click resets. */
  Grid.prototype.onRelayout = async function (chart, event) {
    if (event["xaxis.autorange"]) {
      if (chart.zoom) {
        chart.zoom = null;
        this.render(chart);
      }
      return;
    }
    if (!("xaxis.range[0]" in event)) return;
    const range = [event["xaxis.range[0]"], event["xaxis.range[1]"]];
    const steps = this.stepRange(chart, range);
    const coarse = chart.runs.filter((id) => chart.data.get(id).downsampled);
    if (!steps || coarse.length === 0) return; // every point is already drawn
    const params = { max_points: chart.maxPoints, step_min: steps[0], step_max: steps[1], timestamps: String(chart.timed) };
    const read = await fetchLines(this.config, chart.key, coarse, params);
    const data = new Map();
    chart.runs.forEach((id) => data.set(id, read.get(id) || chart.data.get(id)));
    chart.zoom = { range: range, data: data };
    this.render(chart);
    chart.card.dataset.zoomed = "1";
  };

  Grid.prototype.stepRange = function (chart, range) {
    if (this.controls.x === "step") {
      return [Math.max(0, Math.floor(range[0])), Math.max(0, Math.ceil(range[1]))];
    }
    const toNumber = (x) =>
      this.controls.x === "time" ? Date.parse(String(x).replace(" ", "T")) : Number(x);
    const lo = toNumber(range[0]);
    const hi = toNumber(range[1]);
    let first = Infinity;
    let last = -Infinity;
    chart.runs.forEach((id) => {
      const series = chart.data.get(id);
      this.xs(id, series).forEach((x, i) => {
        const value = x instanceof Date ? x.getTime() : x;
        if (value >= lo && value <= hi) {
          first = Math.min(first, series.steps[Math.max(i - 1, 0)]);
          last = Math.max(last, series.steps[Math.min(i + 1, series.steps.length - 1)]);
        }
      });
    });
    return first <= last ? [first, last] : null;
  };

  /* New points for one run and key (from the websocket or a catch-up read). */
  Grid.prototype.extend = function (chart, runId, points) {
    if (!chart.loaded) {
      chart.pending.push({ run: runId, points: points });
      return;
    }
    const series = chart.data.get(runId);
    if (!series) return;
    const lastStep = series.steps.length ? series.steps[series.steps.length - 1] : -1;
    const fresh = { steps: [], values: [], times: [] };
    points.steps.forEach((step, i) => {
      if (step <= lastStep) return; // already drawn (first value wins on the server too)
      fresh.steps.push(step);
      fresh.values.push(points.values[i]);
      fresh.times.push(points.timestamps[i]);
    });
    if (fresh.steps.length === 0) return;
    if (this.xMetric && chart.key === this.xMetric.key) this.extendX(runId, fresh); // a catch-up
    const targets = [series];
    const zoomed = chart.zoom && chart.zoom.data.get(runId);
    if (zoomed && zoomed !== series) targets.push(zoomed);
    targets.forEach((target) => {
      if (target.times.length === target.steps.length) target.times.push(...fresh.times); // read with times
      target.steps.push(...fresh.steps);
      target.values.push(...fresh.values);
    });
    chart.card.dataset.points = String(this.pointCount(chart));
    this.count(chart.stats, fresh.values);
    this.showStats(chart, fresh.values[fresh.values.length - 1]);
    if (this.groupBy) return this.renderSoon(chart);
    const index = chart.runs.indexOf(runId);
    const x = this.xs(runId, fresh);
    const y = fresh.values.map(numeric);
    const smoothed = smooth(y, this.controls.smoothing, chart.smoothState.get(runId));
    window.Plotly.extendTraces(chart.plot, { x: [x, x], y: [y, smoothed] }, [2 * index, 2 * index + 1]);
  };

  /* A grouped chart's live points: its groups are drawn again, at most every GROUP_REDRAW_MS. */
  Grid.prototype.renderSoon = function (chart) {
    if (chart.renderTimer) return;
    chart.renderTimer = window.setTimeout(() => {
      chart.renderTimer = null;
      this.render(chart);
    }, GROUP_REDRAW_MS);
  };

  /* The stats of what a chart's first load read (a chart that appeared live). */
  Grid.prototype.statsOf = function (chart) {
    const stats = { min: null, max: null, count: 0 };
    chart.data.forEach((series) => this.count(stats, series.values));
    return stats;
  };

  Grid.prototype.count = function (stats, values) {
    if (!stats) return;
    values.forEach((raw) => {
      const value = comparable(raw);
      if (value === null) return;
      stats.min = stats.min === null ? value : Math.min(stats.min, value);
      stats.max = stats.max === null ? value : Math.max(stats.max, value);
    });
    stats.count += values.length;
  };

  /* A single-run chart's header: last (when given), min, max and point count. */
  Grid.prototype.showStats = function (chart, last) {
    if (chart.runs.length !== 1 || !chart.stats) return;
    const show = (name, text) => {
      const element = chart.card.querySelector("[data-stat-" + name + "]");
      if (element) element.textContent = text;
    };
    const format = (value) => (value === null ? NO_VALUE : Labbook.formatValue(value));
    if (last !== undefined) show("last", Labbook.formatValue(last));
    show("min", format(chart.stats.min));
    show("max", format(chart.stats.max));
    show("count", chart.stats.count + " pt" + (chart.stats.count === 1 ? "" : "s"));
  };

  /* A live "run.points" message. */
  Grid.prototype.onPoints = function (message) {
    const xPoints = this.xMetric && message.series[this.xMetric.key];
    if (xPoints) this.extendX(message.run, xPoints);
    Object.entries(message.series).forEach(([key, points]) => {
      let chart = this.charts.get(key);
      if (!chart) {
        chart = this.addChart(key, [message.run]);
      } else if (!chart.runs.includes(message.run)) {
        chart.runs.push(message.run);
        if (chart.loaded) return this.reload(chart);
      }
      if (points.truncated) return this.reload(chart);
      this.extend(chart, message.run, points);
      this.updateCount();
    });
  };

  Grid.prototype.reload = function (chart) {
    chart.loaded = false;
    chart.zoom = null;
    chart.pending = [];
    this.load(chart);
  };

  /* After a reconnect: read what the socket missed, from the last step each chart has. */
  Grid.prototype.catchUp = async function () {
    const work = [];
    this.charts.forEach((chart) => {
      if (!chart.loaded) return;
      // One read a chart, from the earliest step one of its runs may have missed; extend()
      // skips the steps a run already has.
      const lasts = chart.runs.map((id) => {
        const steps = chart.data.get(id).steps;
        return steps.length ? steps[steps.length - 1] : -1;
      });
      const params = { step_min: Math.min(...lasts) + 1, max_points: chart.maxPoints, timestamps: String(chart.timed) };
      work.push(
        fetchLines(this.config, chart.key, chart.runs, params)
          .then((missed) =>
            missed.forEach((line, id) =>
              this.extend(chart, id, { steps: line.steps, values: line.values, timestamps: line.times }),
            ),
          )
          .catch(() => {}),
      );
    });
    await Promise.all(work);
  };

  Grid.prototype.matches = function (key) {
    return key.toLowerCase().includes(this.controls.search.toLowerCase());
  };

  Grid.prototype.updateCount = function () {
    const output = this.root.querySelector("[data-chart-count]");
    let shown = 0;
    this.charts.forEach((chart) => (shown += chart.card.hidden ? 0 : 1));
    this.sections.forEach((section) => {
      const cards = [...section.grid.children];
      const visible = cards.filter((card) => !card.hidden).length;
      section.count.textContent = visible === cards.length ? String(cards.length) : visible + " of " + cards.length;
      section.details.hidden = visible === 0;
    });
    if (output) {
      output.textContent =
        shown === this.charts.size
          ? this.charts.size + " chart" + (this.charts.size === 1 ? "" : "s")
          : shown + " of " + this.charts.size + " charts";
    }
  };

  Grid.prototype.save = function () {
    const { log, smoothing, x } = this.controls;
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify({ log, smoothing, x }));
  };

  /* The grouping in the page's URL (?group_by=&band=): a reload or a shared link shows it. */
  Grid.prototype.saveGrouping = function () {
    const url = new URL(window.location.href);
    if (this.groupBy) {
      url.searchParams.set("group_by", this.groupBy);
      url.searchParams.set("band", this.band);
    } else {
      url.searchParams.delete("group_by");
      url.searchParams.delete("band");
    }
    window.history.replaceState(window.history.state, "", url);
  };

  Grid.prototype.rerenderAll = function () {
    this.charts.forEach((chart) => this.render(chart));
  };

  Grid.prototype.bindControls = function () {
    const search = this.root.querySelector("[data-chart-search]");
    const log = this.root.querySelector("[data-chart-log]");
    const smoothing = this.root.querySelector("[data-chart-smoothing]");
    const smoothingOut = this.root.querySelector("[data-chart-smoothing-value]");
    const xMode = this.root.querySelector("[data-chart-x]");
    const groupBy = this.root.querySelector("[data-chart-group]");
    const band = this.root.querySelector("[data-chart-band]");
    if (log) log.checked = this.controls.log;
    if (smoothing) smoothing.value = String(this.controls.smoothing);
    if (smoothingOut) smoothingOut.textContent = Number(this.controls.smoothing).toFixed(2);
    if (xMode) {
      this.addXOptions(xMode);
      xMode.value = this.controls.x;
    }
    search?.addEventListener("input", () => {
      this.controls.search = search.value.trim();
      this.charts.forEach((chart) => (chart.card.hidden = !this.matches(chart.key)));
      this.updateCount();
    });
    log?.addEventListener("change", () => {
      this.controls.log = log.checked;
      this.save();
      this.charts.forEach((chart) => {
        if (chart.loaded) window.Plotly.relayout(chart.plot, { "yaxis.type": log.checked ? "log" : "linear" });
      });
    });
    smoothing?.addEventListener("input", () => {
      this.controls.smoothing = Number(smoothing.value);
      smoothingOut.textContent = this.controls.smoothing.toFixed(2);
      this.save();
      this.rerenderAll();
    });
    groupBy?.addEventListener("change", () => {
      this.groupBy = groupBy.value;
      if (band) band.disabled = !this.groupBy;
      this.saveGrouping();
      this.rerenderAll();
    });
    band?.addEventListener("change", () => {
      this.band = band.value;
      this.saveGrouping();
      this.rerenderAll();
    });
    xMode?.addEventListener("change", async () => {
      this.controls.x = xMode.value;
      this.save();
      this.charts.forEach((chart) => (chart.zoom = null));
      if (xMode.value.startsWith(METRIC_X)) await this.loadX(xMode.value.slice(METRIC_X.length));
      else this.xMetric = null;
      this.charts.forEach((chart) => {
        if (chart.loaded && this.byTime() && !chart.timed) this.reload(chart); // drawn when read
      });
      this.rerenderAll();
    });
  };

  /* Every chart's key as an x-axis choice, under the time ones. */
  Grid.prototype.addXOptions = function (select) {
    const group = document.createElement("optgroup");
    group.label = "Metric";
    [...this.charts.keys()].sort().forEach((key) => {
      const option = document.createElement("option");
      option.value = METRIC_X + key;
      option.textContent = key;
      group.append(option);
    });
    if (group.children.length) select.append(group);
  };

  Labbook.charts = function (root) {
    const config = JSON.parse(document.getElementById("charts-config").textContent);
    const grid = new Grid(root, config);
    const state = Labbook.showLiveState(document.querySelector("[data-live-state]"));
    grid.socket = Labbook.live(
      { runs: config.runs.map((run) => run.id) },
      {
        message(msg) {
          if (msg.type === "run.points") {
            grid.onPoints(msg);
            Object.entries(msg.series).forEach(([key, points]) => {
              Labbook.updateSummary(msg.run, key, points.values[points.values.length - 1]);
            });
          } else if (msg.type === "run.status") {
            Labbook.updateStatus(msg.run, msg.status);
          }
          // The page's own scripts (run_page.js) share this socket.
          document.dispatchEvent(new CustomEvent("labbook:live-message", { detail: msg }));
        },
        connected() {
          // Every subscription, the first too: what happened between the render (or the
          // drop) and now reaches no socket.
          grid.catchUp();
          Labbook.refreshRuns(config.runsApi, config.runs.map((run) => run.id));
          document.dispatchEvent(new CustomEvent("labbook:live-connected"));
        },
        state: state,
      },
    );
    return grid;
  };

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.querySelector("[data-charts]");
    if (root) Labbook.grid = Labbook.charts(root);
  });
})();
