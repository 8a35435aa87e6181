/* The report editor: Markdown toolbar, server-rendered live preview, draft autosave,
 * and saving with conflict detection.
 *
 * Reads <script id="editor-config">: {report, revision, title, body, visibility (null when
 * the user may not change it), project, draft (null or {title, body, revision,
 * updatedAt}), csrf, urls: {report, draft, preview, merge, runs, metrics, page}}.
 *
 * Every save sends the revision the editor's text started from (`state.base`). When a
 * teammate saved in between, the API answers 409, and the editor asks the server to merge
 * (urls.merge: three-way, from that revision). A clean merge is shown, marked, for the
 * user to save; overlapping changes are shown side by side, mine | theirs, each with a
 * choice (mine, theirs, both). The merge is saved naming the teammate's revision, so a
 * third save in between is caught the same way. Neither side's text is ever dropped
 * without the user choosing so: autosave keeps a server-side draft every few seconds,
 * and leaving with unsaved, undrafted text asks first.
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
    theirs: null, // the newest revision, after a save found mine stale: {revision, title, body}
    merge: null, // the server's merge of mine with theirs: {data, then, hunks}
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

  // --- Saving and merging ----------------------------------------------------------------------

  async function save(then, merged) {
    if (state.saving) return;
    if (!unsaved()) {
      if (then === "view") window.location.assign(config.urls.page);
      else setStatus("No changes to save since revision " + state.base + ".");
      return;
    }
    const now = text();
    const data = { revision: state.base, title: now.title, body: now.body };
    // Only a change of mine: sending the value the page loaded with would undo a teammate's.
    if (visibility && visibility.value !== state.saved.visibility) data.visibility = visibility.value;
    state.saving = true;
    setStatus("Saving…");
    const result = await api("PATCH", config.urls.report, data).catch(() => null);
    state.saving = false;
    if (result === null) {
      setStatus("Not saved: the server cannot be reached. Your text is still here.", { error: true });
    } else if (result.ok) {
      saved(result.data, now, then, merged);
    } else if (result.status === 409) {
      await showMerge(result.data.error.details.current, now, then);
    } else {
      setStatus("Not saved: " + problem(result), { error: true });
    }
  }

  function saved(report, now, then, merged) {
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
    const how = merged ? ", merged with " + edits(merged) : "";
    setStatus("Saved revision " + report.revision + how + " at " + clock(new Date()) + ".", {
      link: { href: config.urls.page, text: "View the report" },
    });
  }

  /* "rita's edit", "rita's and emil's edits". */
  function edits(authors) {
    if (authors.length === 0) return "the newest revision";
    const names = authors.map((name) => name + "'s");
    const listed = names.length === 1 ? names[0] : names.slice(0, -1).join(", ") + " and " + names.at(-1);
    return listed + (authors.length === 1 ? " edit" : " edits");
  }

  /* A stale save: the server merges my text with the newest revision, three-way from the
   * revision I started from. A clean merge is shown for me to check and save; overlapping
   * changes are shown side by side, one choice each. Nothing is saved until I say so. */
  async function showMerge(current, mine, then) {
    const request = { revision: state.base, title: mine.title, body: mine.body };
    const result = await api("POST", config.urls.merge, request).catch(() => null);
    const merge = result && result.ok ? result.data : null;
    state.merge = merge && { data: merge, then: then, hunks: hunks(merge) };
    state.theirs = merge
      ? { revision: merge.revision, title: side(merge.title, "theirs"), body: side(merge.body, "theirs") }
      : current;
    conflict.querySelector("[data-their-revision]").textContent = state.theirs.revision;
    conflict.querySelector("[data-my-base]").textContent = state.base;
    conflict.querySelector("[data-their-names]").textContent = merge ? names(merge.authors) : "Someone";
    const error = conflict.querySelector("[data-merge-error]");
    error.hidden = Boolean(merge);
    error.textContent = merge ? "" : "Your text could not be merged with theirs: " +
      (result ? problem(result) : "the server cannot be reached.") + " Use theirs, or copy yours and keep editing.";
    conflict.querySelector("[data-conflict-heading]").textContent = heading(merge);
    showClean(merge && merge.clean ? merge : null);
    showHunks(merge && !merge.clean ? state.merge.hunks : []);
    conflict.querySelector("[data-save-merge]").hidden = !merge;
    conflict.querySelector("[data-edit-merge]").hidden = !merge;
    updateChoices();
    conflict.hidden = false;
    conflict.scrollIntoView({ block: "start", behavior: "smooth" });
    const why = merge && merge.clean ? "merged with " + edits(merge.authors) + ": check it and save."
      : "revision " + state.theirs.revision + " was saved meanwhile.";
    setStatus("Not saved yet: " + why, { error: !(merge && merge.clean) });
  }

  function heading(merge) {
    if (!merge) return "Someone saved this report while you were editing";
    if (merge.clean) return "Merged with " + edits(merge.authors);
    return "Your edit and " + edits(merge.authors) + " overlap";
  }

  function names(authors) {
    if (authors.length === 0) return "Someone";
    return authors.length === 1 ? authors[0] : authors.slice(0, -1).join(", ") + " and " + authors.at(-1);
  }

  /* One side's text, back from the chunks: "unchanged" ones hold their lines only. */
  function side(chunks, which) {
    return chunks.flatMap((chunk) => (chunk.kind === "unchanged" ? chunk.lines : chunk[which])).join("\n");
  }

  /* The merged text, each conflict as chosen ("both": mine, then theirs). */
  function merged(chunks) {
    return chunks.flatMap(function (chunk) {
      if (chunk.kind !== "conflict") return chunk.lines;
      return chunk.choice === "both" ? chunk.mine.concat(chunk.theirs) : chunk[chunk.choice];
    }).join("\n");
  }

  function hunks(merge) {
    const found = [];
    ["title", "body"].forEach(function (field) {
      merge[field].forEach(function (chunk, index) {
        if (chunk.kind === "conflict") found.push({ field: field, chunks: merge[field], index: index });
      });
    });
    return found;
  }

  function showClean(merge) {
    const panel = conflict.querySelector("[data-merge-clean]");
    panel.hidden = !merge;
    if (!merge) return;
    const heading = conflict.querySelector("[data-merged-title]");
    heading.replaceChildren(...marked(merge.title, ""));
    conflict.querySelector("[data-merged-body]").replaceChildren(...marked(merge.body, "\n"));
  }

  /* The merged lines as spans, those one side brought marked with it, and before them the
   * lines that side removed, struck through: what each edit did stays visible. */
  function marked(chunks, end) {
    return chunks.flatMap(function (chunk) {
      const from = chunk.kind === "mine" || chunk.kind === "theirs" ? " merge-from-" + chunk.kind : "";
      const kept = new Set(chunk.lines);
      const removed = from ? chunk.base.filter((line) => !kept.has(line)) : [];
      return removed.map((line) => span("del", "line merge-removed" + from, line + end))
        .concat(chunk.lines.map((line) => span("span", "line" + from, line + end)));
    });
  }

  function span(tag, className, content) {
    const element = document.createElement(tag);
    element.className = className;
    element.textContent = content;
    return element;
  }

  function showHunks(found) {
    conflict.querySelector("[data-merge-hunks]").hidden = found.length === 0;
    const count = found.length === 1 ? "You both changed the same lines in 1 place."
      : "You both changed the same lines in " + found.length + " places.";
    conflict.querySelector("[data-hunk-count]").textContent = count;
    const template = $("[data-hunk-template]");
    conflict.querySelector("[data-hunk-list]").replaceChildren(
      ...found.map(function (hunk, n) {
        const item = template.content.firstElementChild.cloneNode(true);
        const chunk = hunk.chunks[hunk.index];
        item.querySelector("[data-hunk-where]").textContent = where(hunk);
        item.querySelector("[data-hunk-revision]").textContent = state.theirs.revision;
        fill(item.querySelector("[data-hunk-mine]"), chunk.mine);
        fill(item.querySelector("[data-hunk-theirs]"), chunk.theirs);
        context(item.querySelector("[data-context-before]"), hunk.chunks, hunk.index, -1);
        context(item.querySelector("[data-context-after]"), hunk.chunks, hunk.index, 1);
        item.querySelectorAll("[data-choice]").forEach(function (radio) {
          radio.name = "merge-hunk-" + n;
          radio.addEventListener("change", function () {
            chunk.choice = radio.value;
            updateChoices();
          });
        });
        return item;
      })
    );
  }

  /* "Title", "Your line 5", "Your lines 5–7", "After your line 4". */
  function where(hunk) {
    if (hunk.field === "title") return "Title";
    const before = hunk.chunks.slice(0, hunk.index);
    const first = before.reduce((n, chunk) => n + (chunk.kind === "unchanged" ? chunk.lines : chunk.mine).length, 0) + 1;
    const count = hunk.chunks[hunk.index].mine.length;
    if (count === 0) return first === 1 ? "At the start of your text" : "After your line " + (first - 1);
    return count === 1 ? "Your line " + first : "Your lines " + first + "–" + (first + count - 1);
  }

  function fill(pre, lines) {
    pre.classList.toggle("empty", lines.length === 0);
    pre.textContent = lines.length ? lines.join("\n") : "(nothing: removed)";
  }

  /* Up to two merged lines before (step -1) or after (step 1) a conflict, so it can be placed;
   * none past another conflict. */
  function context(pre, chunks, index, step) {
    const lines = [];
    for (let i = index + step; chunks[i] && chunks[i].kind !== "conflict" && lines.length < 2; i += step) {
      lines.push(...(step < 0 ? chunks[i].lines.slice().reverse() : chunks[i].lines));
    }
    const shown = step < 0 ? lines.slice(0, 2).reverse() : lines.slice(0, 2);
    pre.hidden = shown.length === 0;
    pre.textContent = shown.join("\n");
  }

  function updateChoices() {
    const open = state.merge ? state.merge.hunks.filter((h) => !h.chunks[h.index].choice).length : 0;
    conflict.querySelector("[data-save-merge]").disabled = open > 0;
    conflict.querySelector("[data-edit-merge]").disabled = open > 0;
    conflict.querySelector("[data-merge-pending]").textContent = open === 0 ? ""
      : open === 1 ? "Choose for 1 more place to save." : "Choose for " + open + " more places to save.";
  }

  /* The editor now holds text on top of `theirs`: its next save names their revision. */
  function rebase(theirs, now) {
    title.value = now.title;
    body.value = now.body;
    state.base = theirs.revision;
    config.revision = theirs.revision;
    state.saved = { title: theirs.title, body: theirs.body, visibility: state.saved.visibility };
    $("[data-revision]").textContent = theirs.revision;
    hideConflict();
    schedulePreview();
  }

  function applyMerge() {
    const merge = state.merge.data;
    const theirs = state.theirs;
    rebase(theirs, { title: merged(merge.title), body: merged(merge.body) });
    return merge;
  }

  function hideConflict() {
    conflict.hidden = true;
    state.theirs = null;
    state.merge = null;
  }

  conflict.querySelector("[data-save-merge]").addEventListener("click", function () {
    const then = state.merge.then;
    const merge = applyMerge();
    save(then, merge.authors);
  });

  conflict.querySelector("[data-edit-merge]").addEventListener("click", function () {
    const revision = state.theirs.revision;
    applyMerge();
    setStatus("The merge is in the editor, on top of revision " + revision + ": save when it reads right.");
    body.focus();
  });

  conflict.querySelector("[data-use-theirs]").addEventListener("click", function () {
    const theirs = state.theirs;
    rebase(theirs, theirs);
    setStatus("Now editing revision " + theirs.revision + ", their text.");
  });

  conflict.querySelector("[data-copy-mine]").addEventListener("click", async function () {
    const status = conflict.querySelector("[data-copy-status]");
    try {
      await navigator.clipboard.writeText(body.value);
      status.textContent = "Copied";
    } catch (error) {
      body.select();
      status.textContent = "Selected in the editor: press Ctrl+C (⌘C) to copy";
    }
  });

  conflict.querySelector("[data-conflict-close]").addEventListener("click", function () {
    hideConflict(); // my text and base stay: saving again merges again
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
