/* The report editor: Markdown toolbar, server-rendered live preview, draft autosave,
 * and saving with conflict detection.
 *
 * Reads <script id="editor-config">: {report, revision, title, body, visibility (null when
 * the user may not change it), project, draft (null or {title, body, revision,
 * updatedAt}), csrf, urls: {report, draft, preview, runs, metrics, page}}.
 *
 * Every save sends the revision the editor's text started from (`state.base`). When a
 * teammate saved in between, the API answers 409 with their revision, and the conflict
 * panel shows both texts: the user picks theirs or overwrites with theirs' number.
 * Text is never dropped without the user asking: autosave keeps a server-side draft
 * every few seconds, and leaving with unsaved, undrafted text asks first.
 *
 * Exposes Labbook.editor = {config, insertBlock(text)} for chart_builder.js.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const PREVIEW_DELAY_MS = 400;
  const AUTOSAVE_MS = 3000;

  const config = JSON.parse(document.getElementById("editor-config").textContent);
  const root = document.querySelector("[data-editor]");
  const $ = (selector) => root.querySelector(selector);
  const title = $("#editor-title");
  const body = $("[data-body]");
  const visibility = $("#editor-visibility");
  const preview = $("[data-preview]");
  const conflict = $("[data-conflict]");

  const state = {
    base: config.revision, // the revision the editor's text started from
    saved: { title: config.title, body: config.body, visibility: config.visibility },
    drafted: null, // the text the server holds as this user's draft
    draftBusy: false,
    offerPending: false,
    saving: false,
    theirs: null,
  };

  // --- Small helpers ------------------------------------------------------------------------

  async function api(method, url, data) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": config.csrf,
      },
      body: data === undefined ? undefined : JSON.stringify(data),
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = null;
    }
    return { ok: response.ok, status: response.status, data: payload };
  }

  function problem(result) {
    const error = result.data && result.data.error;
    return error ? error.message : "the server answered " + result.status + ".";
  }

  function clock(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function text() {
    return { title: title.value, body: body.value };
  }

  function same(a, b) {
    return Boolean(a && b) && a.title === b.title && a.body === b.body;
  }

  function unsaved() {
    const visibilityChanged = visibility && visibility.value !== state.saved.visibility;
    return !same(text(), state.saved) || Boolean(visibilityChanged);
  }

  function setStatus(message, options) {
    const status = $("[data-status]");
    const opts = options || {};
    status.classList.toggle("error", Boolean(opts.error));
    status.replaceChildren(document.createTextNode(message));
    if (opts.link) {
      const link = document.createElement("a");
      link.href = opts.link.href;
      link.textContent = opts.link.text;
      status.append(" ", link);
    }
  }

  // --- Toolbar ----------------------------------------------------------------------------------

  /* Replace the selection, through the browser's editing so Ctrl+Z undoes it. */
  function replaceSelection(replacement, selectFrom, selectTo) {
    body.focus();
    const start = body.selectionStart;
    const done = document.execCommand && document.execCommand("insertText", false, replacement);
    if (!done) {
      body.setRangeText(replacement, body.selectionStart, body.selectionEnd, "end");
      body.dispatchEvent(new Event("input", { bubbles: true }));
    }
    if (selectFrom !== undefined) body.setSelectionRange(start + selectFrom, start + selectTo);
  }

  function selected() {
    return body.value.slice(body.selectionStart, body.selectionEnd);
  }

  function wrap(before, after, placeholder) {
    const inner = selected() || placeholder;
    replaceSelection(before + inner + after, before.length, before.length + inner.length);
  }

  /* Prefix every line the selection touches (headings, lists, task lists). */
  function prefixLines(prefix) {
    const value = body.value;
    const start = value.lastIndexOf("\n", body.selectionStart - 1) + 1;
    let end = value.indexOf("\n", Math.max(body.selectionEnd - 1, start));
    if (end === -1) end = value.length;
    body.setSelectionRange(start, end);
    const lines = value.slice(start, end).split("\n");
    const replaced = lines.map((line) => (line.startsWith(prefix) ? line : prefix + line));
    const joined = replaced.join("\n");
    replaceSelection(joined, joined.length, joined.length);
  }

  /* A block on lines of its own, a blank line before and after. */
  function insertBlock(block) {
    const value = body.value;
    const before = value.slice(0, body.selectionStart);
    const after = value.slice(body.selectionEnd);
    let lead = "\n\n";
    if (before === "" || before.endsWith("\n\n")) lead = "";
    else if (before.endsWith("\n")) lead = "\n";
    const tail = after === "" || after.startsWith("\n") ? "\n" : "\n\n";
    replaceSelection(lead + block + tail);
  }

  const FORMATS = {
    bold: () => wrap("**", "**", "bold text"),
    italic: () => wrap("_", "_", "italic text"),
    heading: () => prefixLines("## "),
    link: () => {
      const label = selected() || "link text";
      replaceSelection("[" + label + "](https://)", label.length + 3, label.length + 11);
    },
    code: () =>
      selected().includes("\n") ? wrap("```\n", "\n```", "") : wrap("`", "`", "code"),
    list: () => prefixLines("- "),
    tasks: () => prefixLines("- [ ] "),
    table: () => insertBlock("| Column | Column |\n| --- | --- |\n| Cell | Cell |"),
  };

  $("[data-toolbar]").addEventListener("click", function (event) {
    const button = event.target.closest("button[data-md]");
    if (button) FORMATS[button.dataset.md]();
  });

  // --- Preview ----------------------------------------------------------------------------------

  let previewTimer = null;
  let previewSeq = 0;

  const smooth = window.Labbook.smooth; // smoothing.js

  /* As report.js draws it: a faint raw trace under its smoothed twin; a metric x axis places
   * each step at that metric's value (chart_tools.js). */
  function traces(spec) {
    const placed = spec.figure.data.map((trace) => Object.assign({}, trace, { x: Labbook.placedX(trace) }));
    if (!(spec.smoothing > 0)) return placed;
    return placed.flatMap((trace) => [
      Object.assign({}, trace, { opacity: 0.3, showlegend: false, hoverinfo: "skip" }),
      Object.assign({}, trace, { y: smooth(trace.y, spec.smoothing) }),
    ]);
  }

  function drawFigure(spec) {
    const element = preview.querySelector('[data-figure="' + spec.block + '"]');
    if (!element || !window.Plotly) return;
    if (spec.kind && spec.kind !== "chart") return Labbook.drawPanel(element, spec.figure, spec.runs);
    const layout = Object.assign({}, spec.figure.layout, { autosize: true });
    const grouping = layout.meta && layout.meta.group_by ? layout.meta : null;
    const drawn = grouping ? Labbook.figureGroups(spec.figure.data, grouping, spec) : traces(spec); // bands.js
    window.Plotly.react(element, drawn, layout, { responsive: true, displaylogo: false });
  }

  function showPreview(result) {
    const scroll = preview.scrollTop;
    if (window.Plotly) preview.querySelectorAll(".js-plotly-plot").forEach((el) => window.Plotly.purge(el));
    preview.innerHTML = result.html; // sanitized by the server (nh3), as on the report page
    result.figures.forEach(drawFigure);
    const errors = $("[data-preview-errors]");
    errors.hidden = result.errors.length === 0;
    errors.textContent = result.errors.length
      ? result.errors.length + " block(s) cannot be drawn: " + result.errors.join(" · ")
      : "";
    preview.scrollTop = scroll;
    preview.setAttribute("aria-busy", "false");
  }

  async function renderPreview() {
    const seq = ++previewSeq;
    const label = $("[data-preview-state]");
    label.textContent = "Rendering…";
    let result;
    try {
      result = await api("POST", config.urls.preview, { body: body.value });
    } catch (error) {
      if (seq === previewSeq) label.textContent = "Preview unavailable: the server cannot be reached.";
      return;
    }
    if (seq !== previewSeq) return; // a newer preview is on its way
    if (!result.ok) {
      label.textContent = "Preview failed: " + problem(result);
      return;
    }
    showPreview(result.data);
    label.textContent = "Up to date";
  }

  function schedulePreview() {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(renderPreview, PREVIEW_DELAY_MS);
  }

  // --- Drafts -------------------------------------------------------------------------------------

  async function autosave() {
    const now = text();
    if (state.draftBusy || state.offerPending || same(now, state.drafted)) return;
    if (state.drafted === null && same(now, state.saved)) return; // nothing typed yet
    const label = $("[data-draft-status]");
    state.draftBusy = true;
    try {
      const draft = { title: now.title, body: now.body, revision: state.base };
      const result = await api("PUT", config.urls.draft, draft);
      if (result.ok) {
        state.drafted = now;
        label.textContent = "Draft saved " + clock(new Date());
      } else {
        label.textContent = "Draft not saved: " + problem(result);
      }
    } catch (error) {
      label.textContent = "Draft not saved: the server cannot be reached.";
    } finally {
      state.draftBusy = false;
    }
  }

  function offerDraft(draft) {
    const offer = $("[data-draft-offer]");
    const time = offer.querySelector("[data-draft-time]");
    time.dateTime = draft.updatedAt;
    time.textContent = new Date(draft.updatedAt).toLocaleString();
    if (draft.revision !== config.revision) {
      offer.querySelector("[data-draft-base]").textContent =
        " (started from revision " + draft.revision + "; the report is at revision " +
        config.revision + " now)";
    }
    state.offerPending = true;
    $("[data-draft-status]").textContent = "Autosave waits until you restore or discard the draft.";
    offer.hidden = false;
    offer.querySelector("[data-draft-restore]").addEventListener("click", function () {
      title.value = draft.title;
      body.value = draft.body;
      state.base = draft.revision; // saving a draft of an older revision shows the conflict
      state.drafted = { title: draft.title, body: draft.body };
      closeOffer("Draft restored.");
      schedulePreview();
    });
    offer.querySelector("[data-draft-discard]").addEventListener("click", async function () {
      const result = await api("DELETE", config.urls.draft).catch(() => ({ ok: false, status: 0 }));
      if (result.ok) state.drafted = text();
      closeOffer(result.ok ? "Draft discarded." : "");
    });
  }

  function closeOffer(message) {
    state.offerPending = false;
    $("[data-draft-offer]").hidden = true;
    $("[data-draft-status]").textContent = message;
    body.focus();
  }

  // --- Saving and conflicts --------------------------------------------------------------------

  async function save(then) {
    if (state.saving) return;
    if (!unsaved()) {
      if (then === "view") window.location.assign(config.urls.page);
      else setStatus("No changes to save since revision " + state.base + ".");
      return;
    }
    const now = text();
    const data = { revision: state.base, title: now.title, body: now.body };
    if (visibility) data.visibility = visibility.value;
    state.saving = true;
    setStatus("Saving…");
    const result = await api("PATCH", config.urls.report, data).catch(() => null);
    state.saving = false;
    if (result === null) {
      setStatus("Not saved: the server cannot be reached. Your text is still here.", { error: true });
    } else if (result.ok) {
      saved(result.data, now, then);
    } else if (result.status === 409) {
      showConflict(result.data.error.details.current, now);
    } else {
      setStatus("Not saved: " + problem(result), { error: true });
    }
  }

  function saved(report, now, then) {
    state.base = report.revision;
    config.revision = report.revision;
    state.saved = { title: now.title, body: now.body, visibility: report.visibility };
    state.drafted = null; // saving removed the draft
    $("[data-revision]").textContent = report.revision;
    $("[data-draft-status]").textContent = "";
    hideConflict();
    if (then === "view") {
      window.location.assign(config.urls.page);
      return;
    }
    setStatus("Saved revision " + report.revision + " at " + clock(new Date()) + ".", {
      link: { href: config.urls.page, text: "View the report" },
    });
  }

  /* Each line of `mine` that `other` lacks is marked, so the differences stand out. */
  function markLines(pre, mine, other) {
    const others = new Set(other.split("\n"));
    pre.replaceChildren(
      ...mine.split("\n").map(function (line) {
        const span = document.createElement("span");
        span.className = others.has(line) ? "line" : "line differs";
        span.textContent = line + "\n";
        return span;
      })
    );
  }

  function showConflict(theirs, mine) {
    state.theirs = theirs;
    conflict.querySelectorAll("[data-their-revision]").forEach((el) => {
      el.textContent = theirs.revision;
    });
    conflict.querySelector("[data-my-base]").textContent = state.base;
    conflict.querySelector("[data-their-title]").textContent = theirs.title;
    conflict.querySelector("[data-my-title]").textContent = mine.title;
    markLines(conflict.querySelector("[data-their-body]"), theirs.body, mine.body);
    markLines(conflict.querySelector("[data-my-body]"), mine.body, theirs.body);
    conflict.hidden = false;
    conflict.scrollIntoView({ block: "start", behavior: "smooth" });
    setStatus("Not saved: revision " + theirs.revision + " was saved meanwhile.", { error: true });
  }

  function hideConflict() {
    conflict.hidden = true;
    state.theirs = null;
  }

  conflict.querySelector("[data-use-theirs]").addEventListener("click", function () {
    const theirs = state.theirs;
    title.value = theirs.title;
    body.value = theirs.body;
    state.base = theirs.revision;
    config.revision = theirs.revision;
    state.saved = { title: theirs.title, body: theirs.body, visibility: state.saved.visibility };
    $("[data-revision]").textContent = theirs.revision;
    hideConflict();
    setStatus("Now editing revision " + theirs.revision + ", their text.");
    schedulePreview();
  });

  conflict.querySelector("[data-overwrite]").addEventListener("click", function () {
    state.base = state.theirs.revision; // knowingly on top of theirs: the history keeps both
    save("stay");
  });

  conflict.querySelector("[data-copy-mine]").addEventListener("click", async function () {
    const status = conflict.querySelector("[data-copy-status]");
    const mine = conflict.querySelector("[data-my-body]");
    try {
      await navigator.clipboard.writeText(body.value);
      status.textContent = "Copied";
    } catch (error) {
      window.getSelection().selectAllChildren(mine);
      status.textContent = "Selected: press Ctrl+C (⌘C) to copy";
    }
  });

  conflict.querySelector("[data-conflict-close]").addEventListener("click", function () {
    conflict.hidden = true; // state.theirs stays: saving again shows the conflict again
    body.focus();
  });

  // --- Wiring ----------------------------------------------------------------------------------------

  root.querySelectorAll("[data-save]").forEach(function (button) {
    button.addEventListener("click", () => save(button.dataset.save));
  });

  document.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "s") {
      event.preventDefault();
      save("stay");
    } else if (event.target === body && (key === "b" || key === "i")) {
      event.preventDefault();
      FORMATS[key === "b" ? "bold" : "italic"]();
    }
  });

  body.addEventListener("input", schedulePreview);

  window.addEventListener("beforeunload", function (event) {
    if (unsaved() && !same(text(), state.drafted)) event.preventDefault();
  });

  title.value = config.title;
  body.value = config.body; // a textarea drops a leading newline of its HTML content
  if (config.draft) offerDraft(config.draft);
  window.setInterval(autosave, AUTOSAVE_MS);
  renderPreview();

  Labbook.editor = { config: config, insertBlock: insertBlock };
})();
