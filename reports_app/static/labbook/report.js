/* Report charts: draw the server-built Plotly figures and keep the live ones live.
 *
 * Reads <script id="report-config">: {figures: [{block, figure, live, smoothing, x,
 * projects}], live: {runs, projects}, blockUrl, share}. Each trace's meta names its
 * run and metric key, its last step and its run's start, so points from the
 * websocket extend exactly the traces they belong to. A new run in a watched
 * project (a chart whose runs come from a selector) redraws that chart from the
 * server; after a reconnect every live chart is redrawn, so nothing is missed.
 * Without Labbook.live (the offline export) the charts are simply drawn.
 *
 * A grouped chart (group_by in its layout's meta) keeps each run's line without drawing it
 * and draws each group's mean and band from them (bands.js); live points join those lines
 * and the groups are drawn again, at most every GROUP_REDRAW_MS.
 *
 * Panels (kind scatter, bar, parallel, importance) hold one value per run: they are drawn
 * again from the server when one of their runs logs or changes status (at most every
 * PANEL_REFRESH_MS), or a run joins their project (panels.js draws them).
 *
 * Live media, table, histogram and logs blocks (config.mediaBlocks) are drawn again
 * from config.mediaBlockUrl and swapped in ([data-drawn-block]) when their run logs what they
 * show: a member's page reads run.media and run.console messages (the rules of
 * media_blocks.touched_by_media / touched_by_console), a share link's socket names the block
 * ("block.changed"). A block is fetched at most every MEDIA_REFRESH_MS.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});

  const smooth = window.Labbook.smooth; // smoothing.js
  const PANEL_REFRESH_MS = 10000;
  const MEDIA_REFRESH_MS = 3000; // a run logging images every second: one fetch per block per 3 s
  const GROUP_REDRAW_MS = 1000; // live points of a grouped chart: one redraw a second at most
  const PLOT_CONFIG = { responsive: true, displaylogo: false };

  /* A point's x as the server writes it: the step itself on a metric x axis (meta.x_of). */
  function xOf(mode, meta, step, timestamp) {
    if (mode === "time") return new Date(timestamp * 1000).toISOString();
    if (mode === "relative") return Math.round(((timestamp - meta.start) / 60) * 1e4) / 1e4;
    return step;
  }

  /* ... and as it is drawn: a metric x axis places the step at the metric's value there. */
  function drawnX(mode, meta, step, timestamp) {
    const x = xOf(mode, meta, step, timestamp);
    return meta.x_of ? Labbook.valueAt(meta.x_of, x) : x; // chart_tools.js
  }

  /* Live points of the metric a chart's x axis names extend its runs' meta.x_of. */
  function growX(metas, runId, series, key) {
    const points = series[key];
    if (!points) return;
    metas.forEach((meta) => {
      if (meta.run !== runId || !meta.x_of) return;
      const by = meta.x_of;
      points.steps.forEach((step, i) => {
        if (by.steps.length && step <= by.steps[by.steps.length - 1]) return;
        by.steps.push(step);
        by.values.push(typeof points.values[i] === "number" ? points.values[i] : null);
      });
    });
  }

  function Chart(spec) {
    this.spec = spec;
    this.element = document.querySelector('[data-figure="' + spec.block + '"]');
    this.draw();
    const box = this.element.closest("figure");
    if (box) Labbook.expandable(box, this.element, box.querySelector("[data-expand]"));
  }

  /* Raw traces from the server, each followed by its smoothed twin when smoothing is on. */
  Chart.prototype.draw = function () {
    if (this.isPanel()) return this.drawPanel();
    if (this.grouping()) return this.drawGroups();
    this.lines = null;
    const spec = this.spec;
    const weight = spec.smoothing || 0;
    this.raw = []; // [{meta, index, twin, state, lastStep}]
    const traces = [];
    spec.figure.data.forEach((trace) => {
      const entry = { meta: trace.meta, index: traces.length, twin: null, lastStep: trace.meta.last_step };
      // Every drawn trace gets arrays of its own: extendTraces grows them in place.
      const x = Labbook.placedX(trace).slice(); // chart_tools.js, as the hover list
      const own = { x: x, y: trace.y.slice(), hoverinfo: "none" };
      if (weight > 0) {
        const faint = { opacity: 0.3, showlegend: false, hoverinfo: "skip" };
        traces.push(Object.assign({}, trace, own, faint));
        entry.state = { last: 0, n: 0 };
        entry.twin = traces.length;
        const smoothed = { x: x.slice(), y: smooth(trace.y, weight, entry.state), hoverinfo: "none" };
        traces.push(Object.assign({}, trace, smoothed));
      } else {
        traces.push(Object.assign({}, trace, own));
      }
      this.raw.push(entry);
    });
    const layout = Object.assign({}, spec.figure.layout, { autosize: true });
    window.Plotly.react(this.element, traces, layout, PLOT_CONFIG);
    this.element.dataset.points = String(this.pointCount());
    this.bindHover();
  };

  /* The hover list (chart_tools.js), bound once after the first draw (Plotly gives the element
   * its .on then): a run's raw and smoothed traces, or a
   * group's band edges and mean, light up together. */
  Chart.prototype.bindHover = function () {
    Labbook.hoverList(this.element, {
      lines: (curve) => {
        if (this.grouping()) return [0, 1, 2].map((i) => curve - (curve % 3) + i);
        const entry = this.raw.find((e) => e.index === curve || e.twin === curve);
        return entry ? [entry.index, entry.twin] : [curve];
      },
    });
  };

  Chart.prototype.grouping = function () {
    const meta = this.spec.figure.layout && this.spec.figure.layout.meta;
    return meta && meta.group_by ? meta : null;
  };

  /* Each run's line kept, not drawn: the groups are (bands.js). */
  Chart.prototype.drawGroups = function () {
    this.raw = [];
    this.lines = this.spec.figure.data.map((trace) => ({
      meta: trace.meta,
      lastStep: trace.meta.last_step,
      x: trace.x.slice(),
      y: trace.y.slice(),
      line: trace.line,
    }));
    this.redrawGroups();
    this.bindHover();
  };

  Chart.prototype.redrawGroups = function () {
    const traces = Labbook.figureGroups(this.lines, this.grouping(), this.spec); // bands.js
    const layout = Object.assign({}, this.spec.figure.layout, { autosize: true });
    window.Plotly.react(this.element, traces, layout, PLOT_CONFIG);
    this.element.dataset.points = String(this.lines.reduce((total, line) => total + line.x.length, 0));
    this.element.dataset.groups = String(traces.length / 3);
  };

  Chart.prototype.isPanel = function () {
    return Boolean(this.spec.kind) && this.spec.kind !== "chart";
  };

  Chart.prototype.drawPanel = function () {
    this.raw = [];
    Labbook.drawPanel(this.element, this.spec.figure, this.spec.runs); // panels.js
  };

  /* A live panel's run logged or changed: draw it again, at most every PANEL_REFRESH_MS. */
  Chart.prototype.touch = function (runId, blockUrl) {
    if (!this.isPanel() || !this.spec.runs.includes(runId) || this.waiting) return;
    this.waiting = window.setTimeout(() => {
      this.waiting = null;
      this.refresh(blockUrl);
    }, PANEL_REFRESH_MS);
  };

  /* Points drawn, from what Plotly holds (extendTraces grows its arrays in place). */
  Chart.prototype.pointCount = function () {
    if (this.lines) return this.lines.reduce((total, line) => total + line.x.length, 0);
    return this.raw.reduce((total, entry) => total + this.element.data[entry.index].x.length, 0);
  };

  /* New points of one run: extend every trace of that run and key, in place. */
  Chart.prototype.extend = function (runId, series) {
    if (this.grouping()) return this.extendGroups(runId, series);
    growX(this.raw.map((entry) => entry.meta), runId, series, this.spec.x);
    const indices = [];
    const xs = [];
    const ys = [];
    this.raw.forEach((entry) => {
      const points = entry.meta.run === runId && series[entry.meta.key];
      if (!points) return;
      const x = [];
      const y = [];
      points.steps.forEach((step, i) => {
        if (step <= entry.lastStep) return;
        x.push(drawnX(this.spec.x, entry.meta, step, points.timestamps[i]));
        y.push(typeof points.values[i] === "number" ? points.values[i] : null);
        entry.lastStep = step;
      });
      if (x.length === 0) return;
      indices.push(entry.index);
      xs.push(x);
      ys.push(y);
      if (entry.twin !== null) {
        indices.push(entry.twin);
        xs.push(x);
        ys.push(smooth(y, this.spec.smoothing, entry.state));
      }
    });
    if (indices.length === 0) return;
    window.Plotly.extendTraces(this.element, { x: xs, y: ys }, indices);
    this.element.dataset.points = String(this.pointCount());
  };

  Chart.prototype.extendGroups = function (runId, series) {
    growX(this.lines.map((line) => line.meta), runId, series, this.spec.x);
    let grew = false;
    this.lines.forEach((line) => {
      const points = line.meta.run === runId && series[line.meta.key];
      if (!points) return;
      points.steps.forEach((step, i) => {
        if (step <= line.lastStep) return;
        line.x.push(xOf(this.spec.x, line.meta, step, points.timestamps[i]));
        line.y.push(typeof points.values[i] === "number" ? points.values[i] : null);
        line.lastStep = step;
        grew = true;
      });
    });
    if (!grew || this.groupTimer) return;
    this.groupTimer = window.setTimeout(() => {
      this.groupTimer = null;
      this.redrawGroups();
    }, GROUP_REDRAW_MS);
  };

  Chart.prototype.refresh = async function (blockUrl) {
    const url = blockUrl.replace(/\/0(\.json)?$/, "/" + this.spec.block + "$1");
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    this.spec = await response.json();
    this.draw();
  };

  /* --- Live media-kind blocks --- */

  /* Whether a run.media message ({key: {kind, steps}}) may change what the block shows. */
  function touchedByMedia(watched, runId, logged) {
    if (watched.kind === "logs" || !watched.runs.includes(runId) || !logged) return false;
    const found = logged[watched.key];
    if (!found) return false;
    if (watched.step === null || watched.kind === "histogram") return true;
    return !Array.isArray(found.steps) || found.steps.includes(watched.step);
  }

  /* ... and whether new console lines may change a logs block (tail, lines span, search). */
  function touchedByConsole(watched, runId, lines, truncated) {
    if (watched.kind !== "logs" || !watched.runs.includes(runId) || !Array.isArray(lines)) return false;
    if (truncated) return true;
    const needle = watched.search.toLowerCase();
    return lines.some((line) => {
      if (watched.start !== null && watched.end !== null) {
        if (!(line.number >= watched.start && line.number <= watched.end)) return false;
      }
      return !needle || String(line.text).toLowerCase().includes(needle);
    });
  }

  function MediaBlocks(config, charts) {
    this.url = config.mediaBlockUrl || "";
    this.watched = config.mediaBlocks || [];
    this.charts = charts;
    this.timers = {};
    this.last = {};
  }

  /* Draw block `index` again soon: at once if it was not fetched lately, else when
   * MEDIA_REFRESH_MS have passed since; messages meanwhile cost nothing more. */
  MediaBlocks.prototype.schedule = function (index) {
    if (!this.url || this.timers[index]) return;
    const wait = Math.max(0, (this.last[index] || 0) + MEDIA_REFRESH_MS - Date.now());
    this.timers[index] = window.setTimeout(() => {
      this.last[index] = Date.now();
      this.fetch(index).finally(() => {
        delete this.timers[index];
      });
    }, wait);
  };

  MediaBlocks.prototype.fetch = async function (index) {
    const url = this.url.replace(/\/0$/, "/" + index);
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const drawn = await response.json();
    const old = document.querySelector('[data-drawn-block="' + index + '"]');
    if (!old) return;
    old.outerHTML = drawn.html;
    if (!drawn.figure) return;
    const spec = { block: index, kind: "histogram", figure: drawn.figure, live: false, runs: [] };
    const at = this.charts.findIndex((chart) => chart.spec.block === index);
    if (at >= 0) this.charts.splice(at, 1);
    this.charts.push(new Chart(spec));
  };

  MediaBlocks.prototype.onMedia = function (runId, logged) {
    this.watched.filter((w) => touchedByMedia(w, runId, logged)).forEach((w) => this.schedule(w.block));
  };

  MediaBlocks.prototype.onConsole = function (msg) {
    this.watched
      .filter((w) => touchedByConsole(w, msg.run, msg.lines, Boolean(msg.truncated)))
      .forEach((w) => this.schedule(w.block));
  };

  MediaBlocks.prototype.refreshAll = function () {
    this.watched.forEach((w) => this.schedule(w.block));
  };

  function start() {
    const config = JSON.parse(document.getElementById("report-config").textContent);
    const charts = config.figures.map((spec) => new Chart(spec));
    Labbook.reportCharts = charts;
    const live = charts.filter((chart) => chart.spec.live);
    const mediaBlocks = new MediaBlocks(config, charts);
    Labbook.reportMediaBlocks = mediaBlocks;
    const stateLabel = document.querySelector("[data-live-state]");
    if (!Labbook.live || (live.length === 0 && mediaBlocks.watched.length === 0)) return;
    const subscription = { runs: config.live.runs, projects: config.live.projects };
    const path = config.share ? "/ws/share/" + encodeURIComponent(config.share) + "/" : undefined;
    let pending = null;
    const refreshWatching = function (project) {
      // Several runs created at once (a sweep) cost one redraw.
      window.clearTimeout(pending);
      pending = window.setTimeout(() => {
        live
          .filter((chart) => !project || chart.spec.projects.length)
          .forEach((chart) => chart.refresh(config.blockUrl));
      }, 300);
    };
    Labbook.reportSocket = Labbook.live(subscription, {
      message(msg) {
        if (msg.type === "run.points") {
          live.forEach((chart) => chart.extend(msg.run, msg.series));
          live.forEach((chart) => chart.touch(msg.run, config.blockUrl));
        } else if (msg.type === "run.status") {
          Labbook.updateStatus(msg.run, msg.status);
          live.forEach((chart) => chart.touch(msg.run, config.blockUrl));
        } else if (msg.type === "project.run" && msg.created) {
          refreshWatching(true);
        } else if (msg.type === "run.media") {
          mediaBlocks.onMedia(msg.run, msg.media);
        } else if (msg.type === "run.console") {
          mediaBlocks.onConsole(msg);
        } else if (msg.type === "block.changed") {
          mediaBlocks.schedule(msg.block); // a share link's socket: the server checked the block
        }
      },
      connected(isReconnect) {
        if (isReconnect) {
          refreshWatching(false);
          mediaBlocks.refreshAll();
        }
      },
      state: Labbook.showLiveState(stateLabel),
    }, path);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
