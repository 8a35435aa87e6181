/* What every line chart gets, on the run and compare pages and in reports:
 *
 * Labbook.hoverList(plot, options): hovering lists the runs nearest the cursor at its x
 *   (at most SHOWN, sorted by value, the nearest in bold) and highlights the nearest run's
 *   line, dimming the others. Plotly's own labels pile up past a few runs, so the traces
 *   hover with hoverinfo "none" and this draws the list. options.value(point) gives the
 *   value shown for a hovered point (the smoothed one when smoothing is on); options.lines
 *   (curve) the trace indices that belong to the same run and stay bright.
 * Labbook.expandable(box, plot, button): the button opens the chart over the whole window
 *   (Escape or the button again closes it); Plotly redraws it at the new size.
 * Labbook.valueAt(series, step): a logged series' ({steps, values}, in step order) value at
 *   ``step``, interpolated between the steps it was logged at and held at either end; what
 *   a metric x axis ("x: epoch") places each point at, on the pages and in reports;
 *   Labbook.placedX(trace) does it for a report chart's trace.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const SHOWN = 8;
  const DIMMED = "0.15";

  function traceIndex(group) {
    const data = group.__data__; // Plotly's calcdata of the trace this <g> draws
    return data && data[0] && data[0].trace ? data[0].trace.index : -1;
  }

  function dim(plot, bright) {
    plot.querySelectorAll(".scatterlayer .trace").forEach((group) => {
      group.style.opacity = bright === null || bright.includes(traceIndex(group)) ? "" : DIMMED;
    });
  }

  function formatted(value) {
    return Labbook.formatValue ? Labbook.formatValue(value) : String(Number(value.toPrecision(5)));
  }

  function row(item, nearest) {
    const line = document.createElement("li");
    if (item === nearest) line.className = "is-nearest";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = item.color;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.name;
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = formatted(item.value);
    line.append(swatch, name, value);
    return line;
  }

  Labbook.valueAt = function (series, step) {
    const steps = series.steps;
    if (steps.length === 0) return null;
    let lo = 0;
    let hi = steps.length - 1;
    if (step <= steps[0]) return finite(series.values[0]);
    if (step >= steps[hi]) return finite(series.values[hi]);
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (steps[mid] <= step) lo = mid;
      else hi = mid;
    }
    const a = finite(series.values[lo]);
    const b = finite(series.values[hi]);
    if (steps[lo] === step || b === null) return a;
    if (a === null) return b;
    return a + ((b - a) * (step - steps[lo])) / (steps[hi] - steps[lo]);
  };


  /* A report chart's trace on a metric x axis (meta.x_of, that metric's points): its x (the
   * steps) placed at the metric's values; any other trace's x as it is. */
  Labbook.placedX = function (trace) {
    const by = trace.meta && trace.meta.x_of;
    return by ? trace.x.map((step) => Labbook.valueAt(by, step)) : trace.x;
  };

  function finite(value) {
    return typeof value === "number" ? value : null; // "NaN" / "Infinity": no value there
  }

  Labbook.hoverList = function (plot, options) {
    if (plot.dataset.hoverList) return;
    plot.dataset.hoverList = "1";
    const tip = document.createElement("div");
    tip.className = "chart-tooltip";
    tip.hidden = true;
    tip.setAttribute("aria-hidden", "true"); // the chart's data is in its CSV and tables
    plot.append(tip);
    const valueOf = options.value || ((point) => point.y);
    const linesOf = options.lines || ((curve) => [curve]);

    plot.on("plotly_hover", (event) => {
      const cursor = event.yvals && event.yvals[0];
      const log = plot._fullLayout && plot._fullLayout.yaxis.type === "log";
      const scale = (v) => (log ? Math.log10(v) : v);
      const items = event.points
        .map((point) => ({
          curve: point.curveNumber,
          name: point.data.name,
          color: point.data.line && point.data.line.color,
          value: valueOf(point),
          x: point.x,
        }))
        .filter((item) => typeof item.value === "number" && isFinite(item.value));
      if (items.length === 0 || typeof cursor !== "number") return;
      items.sort((a, b) => Math.abs(scale(a.value) - scale(cursor)) - Math.abs(scale(b.value) - scale(cursor)));
      const nearest = items[0];
      const shown = items.slice(0, SHOWN).sort((a, b) => b.value - a.value);
      const head = document.createElement("p");
      head.textContent = String(nearest.x) + (items.length > SHOWN ? " · " + SHOWN + " of " + items.length + " runs" : "");
      const list = document.createElement("ol");
      list.append(...shown.map((item) => row(item, nearest)));
      tip.replaceChildren(head, list);
      tip.hidden = false;
      dim(plot, items.length > 1 ? linesOf(nearest.curve) : null);
      plot.dataset.highlighted = nearest.name;
      const box = plot.getBoundingClientRect();
      const x = event.event.clientX - box.left;
      const y = event.event.clientY - box.top;
      const left = x + 16 + tip.offsetWidth > box.width ? x - 16 - tip.offsetWidth : x + 16;
      tip.style.left = Math.max(0, left) + "px";
      tip.style.top = Math.max(0, Math.min(y - 12, box.height - tip.offsetHeight)) + "px";
    });
    plot.on("plotly_unhover", () => {
      tip.hidden = true;
      dim(plot, null);
      delete plot.dataset.highlighted;
    });
  };

  Labbook.expandable = function (box, plot, button) {
    if (!button || button.dataset.bound) return;
    button.dataset.bound = "1";
    const close = () => set(false);
    // A figure with a fixed height (report charts) gets the window's; the others follow the
    // CSS size of their box (the run and compare charts).
    function fit(open) {
      if (!window.Plotly || !plot.classList.contains("js-plotly-plot")) return;
      const fixed = open ? plot.layout.height : Number(box.dataset.height || 0);
      if (open && fixed) box.dataset.height = String(fixed);
      if (fixed) window.Plotly.relayout(plot, { height: open ? Math.max(320, window.innerHeight - 120) : fixed });
      else window.Plotly.Plots.resize(plot);
    }
    function onKey(event) {
      if (event.key === "Escape") close();
    }
    function set(open) {
      box.classList.toggle("is-expanded", open);
      document.body.classList.toggle("has-expanded-chart", open);
      button.setAttribute("aria-pressed", String(open));
      button.textContent = open ? "Close" : "Expand";
      if (open) document.addEventListener("keydown", onKey);
      else document.removeEventListener("keydown", onKey);
      fit(open);
    }
    button.addEventListener("click", () => set(!box.classList.contains("is-expanded")));
  };
})();
