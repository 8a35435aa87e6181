/* The run page's Media section: a panel per key the run logged images, tables, histograms or
 * texts under, kept up to date live.
 *
 * The page renders the section hidden, with a JSON config in <script id="media-config">:
 *   {run: 7, keysApi: "/api/v1/runs/7/media", itemsApi: "/api/v1/runs/7/media/KEY",
 *    maxItems: 1000, stepItems: 100, tableRows: 50}
 * The script reads the keys ({media: [{key, kind, count, first_step, last_step}]}) and shows
 * the section once there is one (the page's render costs no query for them). A panel reads
 * its key's items (GET itemsApi ?step= | ?step_min=&limit=) when it first scrolls
 * into view; every answer carries all the key's steps, which is what a step slider moves over.
 *
 * - Images: the items at the chosen step in a grid, captions under them; a click opens one at
 *   full size (a <dialog>). The slider follows the newest step until the reader moves it off
 *   the last one; "Latest" (or moving back to the last step) follows again.
 * - Tables: the table at the chosen step (the last logged there), read from its file; sorted
 *   by a header click (numbers as numbers), filtered by a substring of any cell, shown
 *   `tableRows` rows a page.
 * - Histograms: every step's histogram (the latest `maxItems` steps) as one heatmap, x the
 *   step and y the value, after resampling each onto common bins (the steps' bins differ);
 *   beside it the latest histogram as bars in its own bins, or the hovered step's.
 * - Texts: the texts at the chosen step (the first `TEXTS_PER_STEP`), each read from its file
 *   into a <pre> that scrolls; a JSON text is re-indented (its numbers and strings kept as
 *   written), a long one cut at `TEXT_SHOWN_CHARS` with a link to the whole file. The slider
 *   is the images' one.
 *
 * Live: charts.js owns the socket and re-dispatches each message on document
 * ("labbook:live-message"); a "run.media" message names the keys and steps stored, and each
 * named panel reads its key again (a new key gets a new panel). On every (re)subscription
 * ("labbook:live-connected") the key list is read again: what was stored while the socket was
 * down reaches no message. A key whose kind changes (MLflow's log_table uploads its JSON file,
 * a text until the tag naming it a table arrives) gets a new panel of its new kind.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const HEAT_BINS_MIN = 20; // the heatmap's common bins: the most any step has, within these
  const HEAT_BINS_MAX = 128;
  const NARROW_PLOT = 560; // px: a heatmap narrower than this has no colour bar
  const PIXELATED_BELOW = 96; // px: small images (MNIST digits) are scaled up without blurring
  const TEXT_SHOWN_CHARS = 200000; // a longer text shows its start and links to the whole file
  const TEXTS_PER_STEP = 10; // texts of one step shown (each is read from its own file)
  const COLORSCALE = [
    [0, "#f7fbff"],
    [0.25, "#c6dbef"],
    [0.5, "#6baed6"],
    [0.75, "#2171b5"],
    [1, "#08306b"],
  ];
  const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  /* --- Small helpers ------------------------------------------------------------------- */

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => {
      if (value === false || value === null || value === undefined) return;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    });
    children.forEach((child) => child !== null && child !== undefined && node.append(child));
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(body && body.error ? body.error.message : "error " + response.status);
    }
    return response.json();
  }

  /* The API answers absolute URLs from the request's host; the page asks its own origin. */
  function samePath(url) {
    const parsed = new URL(url, window.location.href);
    return parsed.pathname + parsed.search;
  }

  function plural(n, word) {
    return n.toLocaleString() + " " + word + (n === 1 ? "" : "s");
  }

  function cellText(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  /* Numbers first and numerically, then text (naturally: "item 2" before "item 10"), empty last. */
  function compareCells(a, b) {
    const emptyA = a === null || a === undefined || a === "";
    const emptyB = b === null || b === undefined || b === "";
    if (emptyA || emptyB) return emptyA === emptyB ? 0 : emptyA ? 1 : -1;
    const numA = typeof a === "number";
    const numB = typeof b === "number";
    if (numA && numB) return a - b;
    if (numA !== numB) return numA ? -1 : 1;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  /* `counts` over `edges` spread onto `target` edges, each bin's count evenly over its width:
   * the totals stay, whatever bins each step was logged with. */
  function resample(counts, edges, target) {
    const out = new Array(target.length - 1).fill(0);
    let first = 0;
    for (let i = 0; i < counts.length; i++) {
      const low = edges[i];
      const high = edges[i + 1];
      if (!counts[i]) continue;
      while (first < out.length && target[first + 1] <= low) first++;
      for (let k = first; k < out.length && target[k] < high; k++) {
        const overlap = Math.min(high, target[k + 1]) - Math.max(low, target[k]);
        if (overlap > 0) out[k] += (counts[i] * overlap) / (high - low);
      }
    }
    return out;
  }
  Labbook.resampleHistogram = resample;

  function commonEdges(histograms) {
    let low = Infinity;
    let high = -Infinity;
    let most = 0;
    histograms.forEach((h) => {
      low = Math.min(low, h.edges[0]);
      high = Math.max(high, h.edges[h.edges.length - 1]);
      most = Math.max(most, h.counts.length);
    });
    const bins = Math.min(HEAT_BINS_MAX, Math.max(HEAT_BINS_MIN, most));
    const edges = Array.from({ length: bins + 1 }, (_, k) => low + ((high - low) * k) / bins);
    edges[bins] = high;
    return edges;
  }

  function centers(edges) {
    return edges.slice(0, -1).map((low, k) => (low + edges[k + 1]) / 2);
  }

  /* --- The step slider (images and tables) ---------------------------------------------- */

  let sliderIds = 0;

  /* A range input over a key's steps, the step it shows, and "Latest". */
  function StepControl(onPick) {
    const id = "media-step-" + ++sliderIds;
    this.steps = [];
    this.follow = true; // on the newest step, and staying there as steps arrive
    this.input = el("input", { type: "range", id: id, min: "0", max: "0", value: "0", "data-media-slider": true });
    this.output = el("output", { for: id, class: "media-step", "data-media-step": true });
    this.position = el("span", { class: "muted", "data-media-position": true });
    this.latest = el("button", {
      type: "button",
      class: "button secondary small",
      "data-media-latest": true,
      "aria-pressed": "true",
      text: "Latest",
    });
    this.root = el(
      "div",
      { class: "media-steps", role: "group", "aria-label": "Step" },
      el("label", { for: id, text: "Step" }),
      this.input,
      this.output,
      this.position,
      this.latest,
    );
    this.input.addEventListener("input", () => {
      const index = Number(this.input.value);
      this.follow = index === this.steps.length - 1;
      this.show(index);
      onPick(this.steps[index]);
    });
    this.latest.addEventListener("click", () => {
      this.follow = true;
      this.show(this.steps.length - 1);
      onPick(this.steps[this.steps.length - 1]);
    });
  }

  /* The step to read: the newest while following, else the one picked. */
  StepControl.prototype.wanted = function (fallback) {
    if (this.follow || !this.steps.length) return this.steps.length ? this.steps[this.steps.length - 1] : fallback;
    return this.steps[Number(this.input.value)];
  };

  StepControl.prototype.update = function (steps, step) {
    this.steps = steps;
    const index = Math.max(0, steps.indexOf(step));
    this.input.max = String(Math.max(0, steps.length - 1));
    this.show(index);
    this.root.hidden = steps.length < 2;
  };

  StepControl.prototype.show = function (index) {
    this.input.value = String(index);
    const step = this.steps[index];
    this.output.textContent = step === undefined ? "" : "step " + step.toLocaleString();
    this.input.setAttribute("aria-valuetext", this.output.textContent);
    this.position.textContent = this.steps.length ? index + 1 + " of " + this.steps.length : "";
    this.latest.setAttribute("aria-pressed", String(this.follow));
    this.latest.disabled = this.follow;
  };

  /* --- Panels --------------------------------------------------------------------------- */

  function Panel(media, entry) {
    this.media = media;
    this.key = entry.key;
    this.kind = entry.kind;
    this.entry = entry; // {count, first_step, last_step} as last read from the key list
    this.loaded = false; // read once: live messages read it again
    this.asked = 0; // answers to an older request than the newest are dropped
    this.summary = el("span", { class: "muted", "data-media-summary": true });
    this.body = el("div", { class: "media-body", "data-media-body": true });
    this.root = el(
      "article",
      { class: "media-panel media-" + entry.kind, "data-media-key": entry.key, "data-kind": entry.kind },
      el(
        "header",
        null,
        el("h3", { text: entry.key }),
        el("span", { class: "media-kind", text: entry.kind }),
        this.summary,
      ),
      this.body,
    );
    this.describe(entry.count, entry.last_step);
    this.status("Loading…");
  }

  Panel.prototype.describe = function (steps, last) {
    if (typeof steps === "number" && last !== undefined && last !== null) {
      this.summary.textContent = plural(steps, "item") + " · last step " + last.toLocaleString();
    }
  };

  Panel.prototype.describeSteps = function (steps) {
    if (!steps.length) return;
    const last = steps[steps.length - 1];
    this.summary.textContent = plural(steps.length, "step") + " · last " + last.toLocaleString();
  };

  /* A message in place of the panel's content (loading, empty, an error with Retry). */
  Panel.prototype.status = function (text, retry) {
    const line = el("p", { class: retry ? "media-status media-error" : "media-status muted", role: retry ? "alert" : null, text: text });
    if (retry) {
      const again = el("button", { type: "button", class: "button secondary small", text: "Retry" });
      again.addEventListener("click", () => this.refresh());
      line.append(" ", again);
    }
    this.body.replaceChildren(line);
  };

  Panel.prototype.failed = function (error) {
    this.status("Could not load " + this.key + ": " + error.message, true);
  };

  Panel.prototype.url = function (params) {
    const key = this.key.split("/").map(encodeURIComponent).join("/");
    const query = new URLSearchParams(params).toString();
    return this.media.config.itemsApi.replace("KEY", key) + (query ? "?" + query : "");
  };

  /* The items of this panel's kind (a key could, in principle, hold several kinds). */
  Panel.prototype.ofKind = function (items) {
    return items.filter((item) => item.kind === this.kind);
  };

  /* --- Images --- */

  function ImagePanel(media, entry) {
    Panel.call(this, media, entry);
    this.byStep = new Map(); // step -> items read
    this.control = new StepControl((step) => this.show(step));
    this.grid = el("div", { class: "media-grid", "data-media-grid": true });
    this.note = el("p", { class: "muted media-note", hidden: true });
  }
  ImagePanel.prototype = Object.create(Panel.prototype);

  /* Read again (the slider's steps too): the step shown, or the newest while following. */
  ImagePanel.prototype.refresh = function (stepsStored) {
    (stepsStored || []).forEach((step) => this.byStep.delete(step));
    if (!stepsStored) this.byStep.clear();
    let step = this.control.wanted(this.entry.last_step);
    if (this.control.follow && stepsStored && stepsStored.length) step = Math.max(step ?? 0, ...stepsStored);
    return this.show(step, true);
  };

  ImagePanel.prototype.show = async function (step, fresh) {
    const asked = ++this.asked;
    let items = fresh ? undefined : this.byStep.get(step);
    let steps = this.control.steps;
    try {
      if (!items) {
        const body = await getJSON(this.url({ step: step, limit: this.media.config.stepItems }));
        items = this.ofKind(body.items);
        steps = body.steps;
        this.byStep.set(step, items);
      }
    } catch (error) {
      if (asked === this.asked) this.failed(error);
      return;
    }
    if (asked !== this.asked) return;
    this.loaded = true;
    this.control.update(steps, step);
    this.describeSteps(steps);
    this.draw(step, items);
  };

  ImagePanel.prototype.draw = function (step, items) {
    if (!this.body.contains(this.grid)) this.body.replaceChildren(this.control.root, this.grid, this.note);
    this.grid.dataset.step = String(step);
    this.grid.replaceChildren(
      ...items.map((item, index) => {
        const image = el("img", {
          src: samePath(item.url),
          alt: item.caption || this.key + " at step " + step + ", image " + (index + 1),
          width: item.width,
          height: item.height,
          loading: "lazy",
          class: Math.max(item.width, item.height) < PIXELATED_BELOW ? "pixelated" : null,
        });
        const open = el("button", { type: "button", class: "media-thumb", title: "Show full size" }, image);
        open.addEventListener("click", () => this.media.lightbox(item, this.key));
        return el(
          "figure",
          { class: "media-figure", "data-media-item": item.id },
          open,
          el("figcaption", { text: item.caption || "" }),
        );
      }),
    );
    if (!items.length) this.grid.append(el("p", { class: "muted", text: "No images at this step." }));
    const cut = items.length >= this.media.config.stepItems;
    this.note.hidden = !cut;
    this.note.textContent = cut ? "The first " + items.length + " images of this step." : "";
  };

  /* --- Tables --- */

  function TablePanel(media, entry) {
    Panel.call(this, media, entry);
    this.control = new StepControl((step) => this.show(step));
    this.tables = new Map(); // media id -> {columns, rows}
    this.view = { sort: -1, descending: false, filter: "", page: 0 };
    this.table = null;
    this.item = null;
    this.build();
  }
  TablePanel.prototype = Object.create(Panel.prototype);

  TablePanel.prototype.build = function () {
    const id = "media-filter-" + ++sliderIds;
    this.filter = el("input", { type: "search", id: id, placeholder: "Filter rows", autocomplete: "off", "data-media-filter": true });
    this.filter.addEventListener("input", () => {
      this.view.filter = this.filter.value;
      this.view.page = 0;
      this.render();
    });
    this.caption = el("p", { class: "muted media-note", hidden: true });
    this.wrap = el("div", { class: "table-wrap media-table-wrap" });
    this.range = el("span", { class: "muted", "data-media-rows": true, "aria-live": "polite" });
    this.previous = el("button", { type: "button", class: "button secondary small", text: "Previous", "data-media-previous": true });
    this.next = el("button", { type: "button", class: "button secondary small", text: "Next", "data-media-next": true });
    this.previous.addEventListener("click", () => this.turn(-1));
    this.next.addEventListener("click", () => this.turn(1));
    this.tools = el(
      "div",
      { class: "media-table-tools" },
      el("label", { for: id, class: "visually-hidden", text: "Filter the rows of " + this.key }),
      this.filter,
    );
    this.pager = el("div", { class: "media-pager" }, this.range, el("span", { class: "media-pager-buttons" }, this.previous, this.next));
  };

  TablePanel.prototype.refresh = function (stepsStored) {
    let step = this.control.wanted(this.entry.last_step);
    if (this.control.follow && stepsStored && stepsStored.length) step = Math.max(step ?? 0, ...stepsStored);
    return this.show(step);
  };

  TablePanel.prototype.show = async function (step) {
    const asked = ++this.asked;
    let body, table, item;
    try {
      body = await getJSON(this.url({ step: step, limit: this.media.config.stepItems }));
      const items = this.ofKind(body.items);
      item = items[items.length - 1];
      if (item) {
        table = this.tables.get(item.id);
        if (!table) {
          table = await getJSON(samePath(item.url));
          this.tables.set(item.id, table);
        }
      }
    } catch (error) {
      if (asked === this.asked) this.failed(error);
      return;
    }
    if (asked !== this.asked) return;
    this.loaded = true;
    this.control.update(body.steps, step);
    this.describeSteps(body.steps);
    if (!item) {
      this.status("No table at this step.");
      return;
    }
    if (this.item === null || this.table === null || this.table.columns.join("\u0000") !== table.columns.join("\u0000")) {
      this.view.sort = -1; // another table's columns: its own order
    }
    this.item = item;
    this.table = table;
    const several = body.items.length > 1 ? " (the last of " + body.items.length + " logged at this step)" : "";
    this.caption.textContent = (item.caption || "") + several;
    this.caption.hidden = !this.caption.textContent;
    if (!this.body.contains(this.wrap)) {
      this.body.replaceChildren(this.control.root, this.tools, this.caption, this.wrap, this.pager);
    }
    this.render();
  };

  TablePanel.prototype.rows = function () {
    const needle = this.view.filter.trim().toLowerCase();
    let rows = this.table.rows;
    if (needle) rows = rows.filter((row) => row.some((cell) => cellText(cell).toLowerCase().includes(needle)));
    if (this.view.sort >= 0) {
      const column = this.view.sort;
      const sign = this.view.descending ? -1 : 1;
      rows = rows
        .map((row, index) => [row, index])
        .sort((a, b) => {
          const order = compareCells(a[0][column], b[0][column]);
          if (order === 0) return a[1] - b[1]; // stable
          const empty = (v) => v === null || v === undefined || v === "";
          if (empty(a[0][column]) || empty(b[0][column])) return order; // empty last both ways
          return sign * order;
        })
        .map((pair) => pair[0]);
    }
    return rows;
  };

  /* Columns whose cells are all numbers (or empty): right-aligned, header too. */
  TablePanel.prototype.numericColumns = function () {
    if (this.numeric && this.numeric.table === this.table) return this.numeric.columns;
    const columns = this.table.columns.map((_, column) =>
      this.table.rows.every((row) => row[column] === null || typeof row[column] === "number"),
    );
    this.numeric = { table: this.table, columns: columns };
    return columns;
  };

  TablePanel.prototype.turn = function (by) {
    this.view.page += by;
    this.render();
  };

  TablePanel.prototype.sortBy = function (column) {
    if (this.view.sort === column) this.view.descending = !this.view.descending;
    else Object.assign(this.view, { sort: column, descending: false });
    this.view.page = 0;
    this.render();
  };

  TablePanel.prototype.render = function () {
    const size = this.media.config.tableRows;
    const rows = this.rows();
    const pages = Math.max(1, Math.ceil(rows.length / size));
    this.view.page = Math.min(Math.max(0, this.view.page), pages - 1);
    const start = this.view.page * size;
    const shown = rows.slice(start, start + size);
    const numeric = this.numericColumns();
    const head = el(
      "tr",
      null,
      ...this.table.columns.map((name, column) => {
        const sorted = this.view.sort === column;
        const button = el("button", {
          type: "button",
          class: "link sort" + (sorted ? (this.view.descending ? " sort-desc" : " sort-asc") : ""),
          text: name,
        });
        button.addEventListener("click", () => this.sortBy(column));
        const order = sorted ? (this.view.descending ? "descending" : "ascending") : null;
        return el("th", { scope: "col", "aria-sort": order, class: numeric[column] ? "num" : null }, button);
      }),
    );
    const body = shown.map((row) =>
      el("tr", null, ...row.map((cell, column) => el("td", { class: numeric[column] ? "num" : null, text: cellText(cell) }))),
    );
    if (!shown.length) {
      const text = this.table.rows.length ? "No row matches “" + this.view.filter.trim() + "”." : "The table has no rows.";
      body.push(el("tr", null, el("td", { colspan: String(this.table.columns.length), class: "muted", text: text })));
    }
    this.wrap.replaceChildren(
      el("table", { class: "table media-table", "data-media-table": true }, el("thead", null, head), el("tbody", null, ...body)),
    );
    const filtered = rows.length !== this.table.rows.length ? " (filtered from " + this.table.rows.length.toLocaleString() + ")" : "";
    this.range.textContent = rows.length
      ? "rows " + (start + 1).toLocaleString() + "–" + (start + shown.length).toLocaleString() + " of " + rows.length.toLocaleString() + filtered
      : "0 rows" + filtered;
    this.previous.disabled = this.view.page === 0;
    this.next.disabled = this.view.page >= pages - 1;
  };

  /* --- Histograms --- */

  function HistogramPanel(media, entry) {
    Panel.call(this, media, entry);
    this.byStep = new Map(); // step -> {counts, edges, caption}: the last logged at each step
    this.steps = [];
    this.hovered = null;
    this.plot = el("div", { class: "plot media-heatmap", "data-media-heatmap": true, role: "img", "aria-label": "Histograms of " + entry.key + " over steps" });
    this.note = el("p", { class: "muted media-note", hidden: true });
    this.width = 0;
    if ("ResizeObserver" in window) {
      // Narrow and wide plots split the heatmap and the bars differently: drawn again when
      // the width changes (a phone turned, a window resized), not only resized.
      new ResizeObserver(() => {
        const width = this.plot.clientWidth;
        if (!width || width === this.width) return;
        this.width = width;
        if (!this.plot.classList.contains("js-plotly-plot")) return;
        this.draw();
        window.Plotly.Plots.resize(this.plot); // react keeps an autosized plot's old size
      }).observe(this.plot);
    }
  }
  HistogramPanel.prototype = Object.create(Panel.prototype);

  /* Read the histograms from `from` on (all of them when undefined), keeping the newest
   * `maxItems` steps. */
  HistogramPanel.prototype.refresh = async function (stepsStored) {
    const asked = ++this.asked;
    const limit = this.media.config.maxItems;
    const from = stepsStored && stepsStored.length && this.loaded ? Math.min(...stepsStored) : undefined;
    let body;
    try {
      const params = { limit: limit };
      if (from !== undefined) params.step_min = from;
      body = await getJSON(this.url(params));
      const all = body.steps;
      const reached = body.items.length ? body.items[body.items.length - 1].step : -1;
      if (body.items.length >= limit && reached < all[all.length - 1]) {
        // More steps than one read holds: the newest of them.
        params.step_min = all[Math.max(0, all.length - limit)];
        body = await getJSON(this.url(params));
      }
    } catch (error) {
      if (asked === this.asked) this.failed(error);
      return;
    }
    if (asked !== this.asked) return;
    if (from === undefined) this.byStep.clear();
    else [...this.byStep.keys()].filter((step) => step >= from).forEach((step) => this.byStep.delete(step));
    this.ofKind(body.items).forEach((item) => this.byStep.set(item.step, item));
    const kept = [...this.byStep.keys()].sort((a, b) => a - b);
    kept.slice(0, Math.max(0, kept.length - limit)).forEach((step) => this.byStep.delete(step));
    this.steps = kept.slice(-limit);
    this.loaded = true;
    this.describeSteps(body.steps);
    this.note.hidden = body.steps.length <= this.steps.length;
    this.note.textContent = "The latest " + this.steps.length.toLocaleString() + " of " + body.steps.length.toLocaleString() + " steps.";
    this.draw();
  };

  HistogramPanel.prototype.narrow = function () {
    return this.plot.clientWidth < NARROW_PLOT;
  };

  HistogramPanel.prototype.layout = function (bars) {
    const narrow = this.narrow();
    const split = narrow ? 0.62 : 0.66;
    return {
      margin: { l: 50, r: 10, t: 24, b: 36 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#fff",
      font: { family: "system-ui, sans-serif", size: 11, color: "#1f2328" },
      showlegend: false,
      xaxis: { domain: [0, split], title: { text: "step", font: { size: 11 } }, automargin: true },
      xaxis2: { domain: [split + 0.08, 1], title: { text: "count", font: { size: 11 } }, automargin: true, rangemode: "tozero" },
      yaxis: { title: { text: "value", font: { size: 11 } }, automargin: true },
      yaxis2: { anchor: "x2", matches: "y", showticklabels: false },
      annotations: [
        {
          text: bars,
          xref: "x2 domain",
          yref: "paper",
          x: 0.5,
          y: 1,
          yanchor: "bottom",
          showarrow: false,
          font: { size: 11, color: "#656d76" },
        },
      ],
    };
  };

  HistogramPanel.prototype.barsOf = function (step) {
    const h = this.byStep.get(step);
    const edges = h.edges;
    return {
      type: "bar",
      orientation: "h",
      xaxis: "x2",
      yaxis: "y2",
      y: centers(edges),
      x: h.counts,
      width: edges.slice(0, -1).map((low, k) => edges[k + 1] - low),
      marker: { color: "#2171b5", line: { width: 0 } },
      hovertemplate: "value %{y:.4g}<br>count %{x}<extra>step " + step + "</extra>",
    };
  };

  HistogramPanel.prototype.draw = function () {
    if (!this.steps.length) {
      this.status("No histograms yet.");
      return;
    }
    if (!this.body.contains(this.plot)) this.body.replaceChildren(this.plot, this.note);
    if (!window.Plotly) {
      this.plot.textContent = "The chart library did not load.";
      return;
    }
    const histograms = this.steps.map((step) => this.byStep.get(step));
    const edges = commonEdges(histograms);
    const rows = histograms.map((h) => resample(h.counts, h.edges, edges));
    const z = edges.slice(0, -1).map((_, bin) => rows.map((row) => row[bin]));
    const heatmap = {
      type: "heatmap",
      x: this.steps,
      y: centers(edges),
      z: z,
      colorscale: COLORSCALE,
      zmin: 0,
      showscale: !this.narrow(), // a phone's plot has no room for it: hovering tells the count
      colorbar: { thickness: 8, len: 1, x: 0.675, xpad: 2, outlinewidth: 0, tickfont: { size: 10 } },
      hovertemplate: "step %{x}<br>value %{y:.4g}<br>count %{z:.4g}<extra></extra>",
    };
    const shown = this.hovered !== null && this.byStep.has(this.hovered) ? this.hovered : this.steps[this.steps.length - 1];
    const label = (shown === this.steps[this.steps.length - 1] ? "latest: " : "") + "step " + shown.toLocaleString();
    window.Plotly.react(this.plot, [heatmap, this.barsOf(shown)], this.layout(label), PLOT_CONFIG);
    this.plot.dataset.steps = String(this.steps.length);
    this.plot.dataset.bars = String(shown);
    if (!this.plot.dataset.bound) {
      this.plot.dataset.bound = "1";
      this.plot.on("plotly_hover", (event) => {
        const point = event.points && event.points[0];
        if (!point || point.curveNumber !== 0 || point.x === this.hovered) return;
        this.hovered = point.x;
        this.draw();
      });
      this.plot.on("plotly_unhover", () => {
        if (this.hovered === null) return;
        this.hovered = null;
        this.draw();
      });
    }
  };

  /* --- Texts --- */

  async function getText(url) {
    const response = await fetch(url, { credentials: "same-origin" }); // Accept */*: the API's renderers are JSON
    if (!response.ok) throw new Error("error " + response.status);
    return response.text();
  }

  /* A JSON text re-indented by two spaces, token by token: numbers and strings stay exactly as
   * written (JSON.parse would round 12345678901234567890). Null when the text is not JSON. */
  function prettyJSON(text) {
    try {
      JSON.parse(text);
    } catch (error) {
      return null;
    }
    const parts = [];
    let depth = 0;
    const newline = () => "\n" + "  ".repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === '"') {
        let end = i + 1;
        while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
        parts.push(text.slice(i, end + 1));
        i = end;
      } else if (c === "{" || c === "[") {
        let next = i + 1;
        while (" \t\r\n".includes(text[next])) next++;
        if (text[next] === "}" || text[next] === "]") {
          parts.push(c + text[next]); // an empty object or list stays on its line
          i = next;
        } else {
          depth++;
          parts.push(c + newline());
        }
      } else if (c === "}" || c === "]") {
        depth--;
        parts.push(newline() + c);
      } else if (c === ",") parts.push("," + newline());
      else if (c === ":") parts.push(": ");
      else if (!" \t\r\n".includes(c)) parts.push(c);
    }
    return parts.join("");
  }
  Labbook.prettyJSON = prettyJSON;

  function TextPanel(media, entry) {
    Panel.call(this, media, entry);
    this.control = new StepControl((step) => this.show(step));
    this.texts = new Map(); // media id -> the text as read
    this.list = el("div", { class: "media-texts", "data-media-texts": true });
    this.note = el("p", { class: "muted media-note", hidden: true });
  }
  TextPanel.prototype = Object.create(Panel.prototype);

  TextPanel.prototype.refresh = function (stepsStored) {
    let step = this.control.wanted(this.entry.last_step);
    if (this.control.follow && stepsStored && stepsStored.length) step = Math.max(step ?? 0, ...stepsStored);
    return this.show(step);
  };

  TextPanel.prototype.show = async function (step) {
    const asked = ++this.asked;
    let body, items;
    try {
      body = await getJSON(this.url({ step: step, limit: this.media.config.stepItems }));
      items = this.ofKind(body.items);
      await Promise.all(
        items.slice(0, TEXTS_PER_STEP).map(async (item) => {
          if (!this.texts.has(item.id)) this.texts.set(item.id, await getText(samePath(item.url)));
        }),
      );
    } catch (error) {
      if (asked === this.asked) this.failed(error);
      return;
    }
    if (asked !== this.asked) return;
    this.loaded = true;
    this.control.update(body.steps, step);
    this.describeSteps(body.steps);
    if (!this.body.contains(this.list)) this.body.replaceChildren(this.control.root, this.list, this.note);
    this.list.dataset.step = String(step);
    this.list.replaceChildren(...items.slice(0, TEXTS_PER_STEP).map((item) => this.draw(item)));
    if (!items.length) this.list.append(el("p", { class: "muted", text: "No text at this step." }));
    const cut = items.length > TEXTS_PER_STEP;
    this.note.hidden = !cut;
    this.note.textContent = cut ? "The first " + TEXTS_PER_STEP + " of " + items.length + " texts of this step." : "";
  };

  TextPanel.prototype.draw = function (item) {
    const text = this.texts.get(item.id);
    const shown = (item.format === "json" && prettyJSON(text)) || text;
    const cut = shown.length > TEXT_SHOWN_CHARS;
    const lines = shown === text ? plural(item.lines, "line") : null; // as stored, not as re-indented
    const facts = [item.caption, lines, item.format !== "text" ? item.format : null];
    return el(
      "figure",
      { class: "media-text", "data-media-item": item.id, "data-format": item.format },
      el("figcaption", { class: "muted", text: facts.filter(Boolean).join(" · ") }),
      el("pre", { tabindex: "0", "data-media-text": true, "aria-label": this.key + " at step " + item.step }, cut ? shown.slice(0, TEXT_SHOWN_CHARS) : shown),
      cut
        ? el(
            "p",
            { class: "muted media-note", "data-media-text-cut": true },
            "The first " + TEXT_SHOWN_CHARS.toLocaleString() + " of " + shown.length.toLocaleString() + " characters. ",
            el("a", { href: samePath(item.url), download: true, text: "Download the whole text" }), // named by the server
          )
        : null,
    );
  };

  const KINDS = { image: ImagePanel, table: TablePanel, histogram: HistogramPanel, text: TextPanel };

  /* --- The section ------------------------------------------------------------------- */

  function Media(section, config) {
    this.section = section;
    this.config = config;
    this.list = section.querySelector("[data-media-panels]");
    this.count = section.querySelector("[data-media-count]");
    this.dialog = section.querySelector("[data-media-lightbox]");
    this.panels = new Map(); // key -> panel
    this.observer =
      "IntersectionObserver" in window
        ? new IntersectionObserver((entries) => this.onVisible(entries), { rootMargin: "300px" })
        : null;
    this.bindLightbox();
  }

  Media.prototype.add = function (entry) {
    if (this.panels.has(entry.key) || !KINDS[entry.kind]) return this.panels.get(entry.key);
    const panel = new KINDS[entry.kind](this, entry);
    this.panels.set(entry.key, panel);
    const after = [...this.panels.keys()].sort().filter((key) => key > entry.key)[0];
    const next = after === undefined ? null : this.panels.get(after).root;
    this.list.insertBefore(panel.root, next && next.parentNode === this.list ? next : null);
    this.section.hidden = false;
    this.count.textContent = plural(this.panels.size, "key");
    if (this.observer) this.observer.observe(panel.root);
    else panel.refresh();
    return panel;
  };

  /* A key now of another kind (a file MLflow's log_table uploaded, a text until its tag came):
   * the old panel goes, one of the new kind takes its place. */
  Media.prototype.replace = function (entry) {
    const old = this.panels.get(entry.key);
    if (this.observer) this.observer.unobserve(old.root);
    old.root.remove();
    this.panels.delete(entry.key);
    return this.add(entry);
  };

  Media.prototype.onVisible = function (entries) {
    entries.forEach((seen) => {
      if (!seen.isIntersecting) return;
      this.observer.unobserve(seen.target);
      const panel = this.panels.get(seen.target.dataset.mediaKey);
      if (panel) {
        panel.visible = true;
        panel.refresh();
      }
    });
  };

  /* A "run.media" message: each key named is read again (a new key gets its panel). */
  Media.prototype.onMessage = function (msg) {
    Object.entries(msg.media || {}).forEach(([key, stored]) => {
      let panel = this.panels.get(key);
      if (!panel || panel.kind !== stored.kind) {
        const last = Math.max(...stored.steps);
        const entry = { key: key, kind: stored.kind, count: stored.steps.length, first_step: Math.min(...stored.steps), last_step: last };
        panel = panel ? this.replace(entry) : this.add(entry);
        return; // read when it scrolls into view
      }
      if (panel.loaded || panel.visible) panel.refresh(stored.steps);
      else panel.entry.last_step = Math.max(panel.entry.last_step ?? 0, ...stored.steps);
    });
  };

  /* On load, and after each (re)subscription: the keys read again; what changed meanwhile
   * is read (the socket sends nothing about what happened while it was down). */
  Media.prototype.catchUp = async function () {
    let body;
    try {
      body = await getJSON(this.config.keysApi);
    } catch (error) {
      return; // the next subscription tries again
    }
    body.media.forEach((entry) => {
      const panel = this.panels.get(entry.key);
      if (!panel) {
        this.add(entry);
        return;
      }
      if (entry.kind !== panel.kind) {
        // Another kind: the panel's is gone (a text become a table), or the key holds both.
        if (!body.media.some((other) => other.key === entry.key && other.kind === panel.kind)) this.replace(entry);
        return;
      }
      const changed = panel.entry.count !== entry.count || panel.entry.last_step !== entry.last_step;
      panel.entry = entry;
      if (changed && panel.loaded) panel.refresh();
    });
  };

  Media.prototype.bindLightbox = function () {
    if (!this.dialog) return;
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.dialog.close(); // the backdrop
    });
  };

  Media.prototype.lightbox = function (item, key) {
    const dialog = this.dialog;
    const image = dialog.querySelector("img");
    image.src = samePath(item.url);
    image.alt = item.caption || key + " at step " + item.step;
    image.width = item.width;
    image.height = item.height;
    image.classList.toggle("pixelated", Math.max(item.width, item.height) < PIXELATED_BELOW);
    dialog.querySelector("[data-media-lightbox-title]").textContent = key + " · step " + item.step.toLocaleString();
    const caption = [item.caption, item.width + "×" + item.height + " " + item.format].filter(Boolean).join(" · ");
    dialog.querySelector("figcaption").textContent = caption;
    dialog.querySelector("[data-media-original]").href = samePath(item.url);
    if (!dialog.open) dialog.showModal();
  };

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.querySelector("[data-media]");
    const config = document.getElementById("media-config");
    if (!section || !config) return;
    const media = new Media(section, JSON.parse(config.textContent));
    Labbook.media = media;
    document.addEventListener("labbook:live-message", (event) => {
      const msg = event.detail;
      if (msg.type === "run.media" && msg.run === media.config.run) media.onMessage(msg);
    });
    document.addEventListener("labbook:live-connected", () => media.catchUp());
    media.catchUp();
  });
})();
