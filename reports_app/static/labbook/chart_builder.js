/* The block builder of the report editor: pick runs of the project, then metrics (a
 * chart), columns (a runs table) or a panel and its values (scatter, bar, parallel
 * coordinates, importance), and insert the block at the cursor. A panel may take every run
 * of the project instead of the ticked ones. Runs come from GET /api/v1/runs?project=...,
 * a run's metric keys from GET /api/v1/runs/<id>/metrics (fetched once per run). Needs
 * Labbook.editor (editor.js).
 */
(function () {
  "use strict";
  const Labbook = window.Labbook || {};
  const dialog = document.querySelector("[data-builder]");
  if (!dialog || !Labbook.editor) return;
  const editor = Labbook.editor;
  const config = editor.config;
  const SEARCH_DELAY_MS = 300;
  const PAGE_SIZE = 100;
  const PANEL_RUNS = 200; // blocks.MAX_PANEL_RUNS: "every run of the project"
  const TITLES = { chart: "Insert chart", runs: "Insert runs table", panel: "Insert panel" };
  const $ = (selector) => dialog.querySelector(selector);

  const state = {
    mode: "chart",
    loaded: false,
    searchSeq: 0,
    shown: [], // runs of the last search
    chosen: new Map(), // run id -> run, in the order picked
    metrics: new Map(), // run id -> [keys], or a promise while loading
    keys: new Set(), // chosen metric keys
    columns: new Set(), // chosen columns
    axes: new Set(), // a parallel panel's chosen columns
  };

  async function getJson(url) {
    const headers = { Accept: "application/json" };
    const response = await fetch(url, { credentials: "same-origin", headers: headers });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data && data.error;
      throw new Error(error ? error.message : "the server answered " + response.status);
    }
    return data;
  }

  // --- Runs ------------------------------------------------------------------------------------

  async function loadRuns(search) {
    const seq = ++state.searchSeq;
    const label = $("[data-run-state]");
    label.textContent = "Loading runs…";
    const params = new URLSearchParams({ project: config.project, page_size: String(PAGE_SIZE) });
    if (search) params.set("search", search);
    try {
      const page = await getJson(config.urls.runs + "?" + params.toString());
      if (seq !== state.searchSeq) return;
      state.shown = page.results;
      state.loaded = true;
      label.textContent = runsNote(page, search);
      renderRuns();
      update(); // a panel over the whole project draws from these runs
    } catch (error) {
      if (seq === state.searchSeq) label.textContent = "Runs could not be loaded: " + error.message;
    }
  }

  function runsNote(page, search) {
    if (page.results.length === 0) return search ? "No run matches." : "This project has no runs yet.";
    return page.next ? "The newest " + PAGE_SIZE + " runs: search to find older ones." : "";
  }

  function checkItem(value, label, note, checked, onChange) {
    const item = document.createElement("li");
    const wrapper = document.createElement("label");
    wrapper.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = value;
    box.checked = checked;
    box.addEventListener("change", () => onChange(box.checked));
    wrapper.append(box, " " + label);
    if (note) {
      const small = document.createElement("span");
      small.className = "muted";
      small.textContent = " " + note;
      wrapper.append(small);
    }
    item.append(wrapper);
    return item;
  }

  function renderRuns() {
    const shownIds = new Set(state.shown.map((run) => run.id));
    const extra = [...state.chosen.values()].filter((run) => !shownIds.has(run.id));
    const items = [...extra, ...state.shown].map((run) =>
      checkItem(run.id, run.name, "#" + run.id + " · " + run.status, state.chosen.has(run.id), (on) =>
        toggleRun(run, on)
      )
    );
    $("[data-run-list]").replaceChildren(...items);
  }

  async function toggleRun(run, on) {
    if (on) state.chosen.set(run.id, run);
    else state.chosen.delete(run.id);
    update();
    if (on && !state.metrics.has(run.id)) {
      const url = config.urls.metrics.replace("/0/", "/" + run.id + "/");
      const loading = getJson(url).then((data) => data.metrics.map((m) => m.key));
      state.metrics.set(run.id, loading);
      try {
        state.metrics.set(run.id, await loading);
      } catch (error) {
        state.metrics.delete(run.id);
        $("[data-metric-state]").textContent = "Metrics of " + run.name + " could not be loaded.";
      }
      update();
    }
  }

  // --- Metrics and columns -------------------------------------------------------------------------

  function metricKeys() {
    const keys = new Set();
    state.chosen.forEach(function (run, id) {
      const found = state.metrics.get(id);
      if (Array.isArray(found)) found.forEach((key) => keys.add(key));
    });
    return [...keys].sort();
  }

  /* {"opt": {"lr": 1}} -> ["opt.lr"]: a nested config value goes by its dotted path. */
  function flatKeys(mapping, prefix) {
    return Object.entries(mapping || {}).flatMap(([key, value]) =>
      value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length
        ? flatKeys(value, prefix + key + ".")
        : [prefix + key]
    );
  }

  /* The runs a block draws: the ticked ones, or (a panel over the whole project) those shown. */
  function sourceRuns() {
    return wholeProject() ? state.shown : [...state.chosen.values()];
  }

  function wholeProject() {
    return state.mode === "panel" && scope() === "project";
  }

  function scope() {
    const checked = dialog.querySelector('[data-option="scope"]:checked');
    return checked ? checked.value : "ticked";
  }

  function columnNames() {
    const fromConfig = new Set();
    const summary = new Set(wholeProject() ? [] : metricKeys());
    sourceRuns().forEach(function (run) {
      flatKeys(run.config, "").forEach((key) => fromConfig.add(key));
      Object.keys(run.summary || {}).forEach((key) => summary.add(key));
    });
    const names = (keys, source) => [...keys].sort().map((key) => source + "." + key);
    return [...names(fromConfig, "config"), ...names(summary, "summary")];
  }

  function renderPicks(listSelector, stateSelector, names, chosen, emptyNote) {
    [...chosen].forEach((name) => names.includes(name) || chosen.delete(name));
    const items = names.map((name) =>
      checkItem(name, name, "", chosen.has(name), function (on) {
        if (on) chosen.add(name);
        else chosen.delete(name);
        update();
      })
    );
    $(listSelector).replaceChildren(...items);
    const loading = [...state.chosen.keys()].some((id) => !Array.isArray(state.metrics.get(id)));
    let note = "";
    if (state.chosen.size === 0) note = "Pick runs first.";
    else if (loading) note = "Loading…";
    else if (names.length === 0) note = emptyNote;
    $(stateSelector).textContent = note;
  }

  // --- The block ----------------------------------------------------------------------------------

  /* A YAML scalar: plain when it reads back as the same string, else JSON-quoted (valid YAML). */
  function scalar(value) {
    const plain = /^[A-Za-z_][\w./ -]*$/.test(value) && value === value.trim();
    const special = /^(true|false|yes|no|on|off|null|y|n)$/i.test(value);
    return plain && !special ? value : JSON.stringify(value);
  }

  function list(values) {
    return "[" + values.map(scalar).join(", ") + "]";
  }

  function option(name) {
    return $('[data-option="' + name + '"]');
  }

  function common(lines) {
    const title = option("title").value.trim();
    if (title) lines.push("title: " + scalar(title));
    if (!option("live").checked) lines.push("live: false");
    return lines.concat("```").join("\n");
  }

  function panelBlock(runs) {
    const kind = option("panel").value;
    const lines = ["```" + kind, runs];
    const chosen = (name) => option(name).value;
    if (kind === "scatter") {
      lines.push("x: " + scalar(chosen("x_column")), "y: " + scalar(chosen("y_column")));
      if (option("log_x").checked) lines.push("log_x: true");
    } else if (kind === "bar") {
      lines.push("value: " + scalar(chosen("value")));
      if (chosen("group_by")) lines.push("group_by: " + scalar(chosen("group_by")));
    } else if (kind === "parallel") {
      lines.push("columns: " + list([...state.axes]));
    } else {
      lines.push("metric: " + scalar(chosen("metric")));
    }
    if ((kind === "scatter" || kind === "parallel") && chosen("color")) {
      lines.push("color: " + scalar(chosen("color")));
    }
    if ((kind === "scatter" || kind === "bar") && option("log_y").checked) lines.push("log_y: true");
    return common(lines);
  }

  function block() {
    const runs = wholeProject()
      ? "runs: {project: " + scalar(config.project) + ", limit: " + PANEL_RUNS + "}"
      : "runs: [" + [...state.chosen.keys()].join(", ") + "]";
    if (state.mode === "panel") return panelBlock(runs);
    if (state.mode === "runs") {
      const lines = ["```runs", runs];
      if (state.columns.size) lines.push("columns: " + list([...state.columns]));
      return lines.concat("```").join("\n");
    }
    const lines = ["```chart", runs, "metrics: " + list([...state.keys]), "x: " + option("x").value];
    const smoothing = Number(option("smoothing").value);
    if (smoothing > 0) lines.push("smoothing: " + smoothing);
    if (option("log_y").checked) lines.push("log_y: true");
    return common(lines);
  }

  function problem() {
    if (!wholeProject() && state.chosen.size === 0) return "Pick at least one run.";
    if (state.mode === "chart" && state.keys.size === 0) return "Pick at least one metric.";
    if (state.mode === "panel") return panelProblem();
    return "";
  }

  function panelProblem() {
    const kind = option("panel").value;
    const needs = { scatter: ["x_column", "y_column"], bar: ["value"], importance: ["metric"] };
    if ((needs[kind] || []).some((name) => !option(name).value)) return "Pick the values to draw.";
    if (kind === "parallel" && state.axes.size < 2) return "Pick at least two axes.";
    return "";
  }

  /* Fill a value menu with the columns of the runs, keeping what was picked. */
  function fillSelect(select, names) {
    const source = select.dataset.columns;
    const shown = source ? names.filter((name) => name.startsWith(source + ".")) : names;
    const extra = select.dataset.extra === undefined ? null : select.dataset.extra.split(" ").filter(Boolean);
    const values = extra === null ? shown : ["", ...extra, ...shown];
    const preferred = values.find((value) => value.startsWith(select.dataset.prefer + "."));
    const kept = values.includes(select.value) ? select.value : preferred || values[0] || "";
    const items = values.map((value) => {
      const item = document.createElement("option");
      item.value = value;
      item.textContent = value || "none";
      return item;
    });
    select.replaceChildren(...items);
    select.value = kept;
  }

  function updatePanel() {
    const kind = option("panel").value;
    dialog.querySelectorAll("[data-panel-only]").forEach((el) => {
      el.hidden = state.mode === "panel" && !el.dataset.panelOnly.split(" ").includes(kind);
    });
    const names = columnNames();
    dialog.querySelectorAll("select[data-columns]").forEach((select) => fillSelect(select, names));
    const none = "These runs have no config or summary values to draw.";
    renderPicks("[data-axis-list]", "[data-panel-state]", names, state.axes, none);
    if (wholeProject()) {
      $("[data-panel-state]").textContent = state.shown.length ? "" : "This project has no runs yet.";
    }
    // Taking every run: the ticks mean nothing, a note says what the block reads instead.
    $("[data-run-list]").hidden = wholeProject();
    $("[data-whole-note]").hidden = !wholeProject();
  }

  function update() {
    if (state.mode === "panel") {
      updatePanel();
    } else if (state.mode === "chart") {
      const none = "These runs logged no metrics yet.";
      renderPicks("[data-metric-list]", "[data-metric-state]", metricKeys(), state.keys, none);
    } else {
      const none = "No config or metrics to show: the table lists names and status.";
      renderPicks("[data-column-list]", "[data-column-state]", columnNames(), state.columns, none);
    }
    $("[data-smoothing-value]").textContent = option("smoothing").value;
    const error = problem();
    $("[data-builder-output]").value = error ? "" : block();
    $("[data-builder-insert]").disabled = Boolean(error);
    $("[data-builder-error]").textContent = state.chosen.size || wholeProject() ? error : "";
  }

  function open(mode) {
    state.mode = mode;
    $("[data-builder-title]").textContent = TITLES[mode];
    dialog.querySelectorAll("[data-mode-only]").forEach((el) => {
      el.hidden = !el.dataset.modeOnly.split(" ").includes(mode);
    });
    $("[data-run-list]").hidden = false; // a chart or a table always takes the ticked runs
    dialog.showModal();
    if (!state.loaded) loadRuns("");
    update();
  }

  // --- Wiring ---------------------------------------------------------------------------------------

  document.querySelectorAll("[data-builder-open]").forEach(function (button) {
    button.addEventListener("click", () => open(button.dataset.builderOpen));
  });

  dialog.querySelectorAll("[data-builder-cancel]").forEach(function (button) {
    button.addEventListener("click", () => dialog.close());
  });

  dialog.querySelectorAll("[data-option]").forEach(function (input) {
    input.addEventListener("input", update);
    input.addEventListener("change", update); // radio buttons and menus
  });

  let searchTimer = null;
  $("[data-run-search]").addEventListener("input", function (event) {
    window.clearTimeout(searchTimer);
    const value = event.target.value.trim();
    searchTimer = window.setTimeout(() => loadRuns(value), SEARCH_DELAY_MS);
  });

  // Enter in a text field must not insert a half-built block (implicit form submission).
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.matches("input")) event.preventDefault();
  });

  $("[data-builder-form]").addEventListener("submit", function (event) {
    event.preventDefault();
    if (problem()) return;
    const text = block();
    dialog.close();
    editor.insertBlock(text);
  });
})();
