/* The run page: its state follows the run live, and editors edit the notes in place.
 *
 * State. What the page shows of the run's state (the header's badges, the failure box, the
 * overview: status, duration, ended, last seen, exit code) are server-rendered parts
 * ([data-run-part]); GET <run>/state answers them rendered as a reload renders them, with
 * the clock: {id, status, ticking, started, now, refresh, href, parts: {name: html}} (the
 * page's own state, in <script id="run-state">, has no parts: they are on the page).
 * applyRunState() is the one place that changes them: it swaps the parts in and keeps the
 * duration ticking while the run runs, and only then. The state is read again when the live
 * socket (charts.js) announces a status change of the run or (re)subscribes, and every
 * `refresh` seconds while the run runs (last seen, stalled).
 *
 * Artifacts. The artifact cards are read again, rendered, when the socket says the run's
 * artifacts changed (at most once per 2 s; see artifactsChanged below).
 *
 * Notes. Editors get an "Edit notes" button that swaps the rendered notes for the form;
 * saving posts the form (the page's own endpoint) asking for JSON and puts back the notes
 * the server rendered. Without scripts the form simply stands under the notes.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});

  /* tracking.presentation.format_duration */
  function formatDuration(total) {
    const seconds = Math.max(0, Math.floor(total));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    if (hours) return hours + "h " + pad(minutes) + "m";
    if (minutes) return minutes + "m " + pad(seconds % 60) + "s";
    return seconds % 60 + "s";
  }

  const page = { state: null, skew: 0, ticker: null, poller: null, asked: 0, shown: 0 };

  function serverNow() {
    return Date.now() / 1000 + page.skew;
  }

  function tick() {
    const duration = document.querySelector("[data-run-duration]");
    if (duration && page.state.ticking) {
      duration.textContent = formatDuration(serverNow() - page.state.started);
    }
  }

  function swapIn(name, html) {
    const old = document.querySelector('[data-run-part="' + name + '"]');
    if (!old) return;
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    old.replaceWith(template.content);
  }

  /* The one place the run's state reaches the page. */
  function applyRunState(state) {
    Object.entries(state.parts || {}).forEach(([name, html]) => swapIn(name, html));
    page.state = state;
    page.skew = state.now - Date.now() / 1000; // the server's clock, as the parts were drawn
    window.clearInterval(page.ticker);
    window.clearInterval(page.poller);
    page.ticker = page.poller = null;
    if (!state.ticking) return; // ended: the parts say it all, and nothing moves any more
    page.ticker = window.setInterval(tick, 1000);
    page.poller = window.setInterval(refresh, state.refresh * 1000);
  }
  Labbook.applyRunState = applyRunState;

  /* Read the state again; an answer older than one already applied is dropped. */
  async function refresh() {
    const asked = ++page.asked;
    let response;
    try {
      response = await fetch(page.state.href, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (error) {
      return; // offline: the socket's next subscription reads it again
    }
    if (!response.ok) return;
    const state = await response.json();
    if (asked <= page.shown) return;
    page.shown = asked;
    applyRunState(state);
  }

  /* Artifact cards: the versions the run logged and used, and its files, are one
   * server-rendered block ([data-run-artifacts]); GET <run>/artifact-cards answers it rendered
   * as a reload renders it. It is read again when the socket says the run's artifacts changed
   * ("run.artifacts") and at every (re)subscription, at most once per ARTIFACTS_EVERY ms: a
   * burst of uploads reads it at its start and once more after the pause, never per file. */
  const ARTIFACTS_EVERY = 2000;
  const cards = { last: -Infinity, timer: null, asked: 0, shown: 0 };

  function artifactsChanged() {
    if (cards.timer !== null) return; // a read is due already: it sees this change too
    const wait = cards.last + ARTIFACTS_EVERY - Date.now();
    if (wait <= 0) {
      readArtifacts();
      return;
    }
    cards.timer = window.setTimeout(() => {
      cards.timer = null;
      readArtifacts();
    }, wait);
  }

  /* One read of the cards; an answer older than one already shown is dropped. */
  async function readArtifacts() {
    const box = document.querySelector("[data-run-artifacts]");
    if (!box) return;
    cards.last = Date.now(); // from the start: a change during the read is read again
    const asked = ++cards.asked;
    let response;
    try {
      response = await fetch(box.dataset.href, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
    } catch (error) {
      return; // offline: the socket's next subscription reads them again
    }
    if (!response.ok) return;
    const html = await response.text();
    if (asked <= cards.shown) return;
    cards.shown = asked;
    box.innerHTML = html; // rendered and escaped by the server, as the page itself
  }

  document.addEventListener("labbook:live-message", (event) => {
    const msg = event.detail;
    if (!page.state || msg.run !== page.state.id) return;
    if (msg.type === "run.status") refresh();
    else if (msg.type === "run.artifacts") artifactsChanged();
  });
  document.addEventListener("labbook:live-connected", () => {
    if (page.state) refresh();
    artifactsChanged();
  });

  function notesEditor(card) {
    const view = card.querySelector("[data-notes-view]");
    const edit = card.querySelector("[data-notes-edit]");
    const form = card.querySelector('form[data-edit="notes"]');
    if (!view || !edit || !form) return; // a viewer: the notes only
    const textarea = form.querySelector("textarea");
    const cancel = form.querySelector("[data-notes-cancel]");
    const save = form.querySelector("button[type=submit]");
    const error = form.querySelector("[data-notes-error]");
    let saved = textarea.value;

    function editing(on) {
      view.hidden = on;
      edit.hidden = on;
      form.hidden = !on;
      error.hidden = true;
      if (on) textarea.focus();
    }

    async function submit(event) {
      event.preventDefault();
      save.disabled = true;
      try {
        const response = await fetch(window.location.pathname, {
          method: "POST",
          body: new FormData(form),
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        const body = await response.json().catch(() => null);
        if (!response.ok) {
          throw new Error(body && body.error ? body.error.message : "error " + response.status);
        }
        view.innerHTML = body.html; // rendered and sanitized by the server
        saved = textarea.value = body.notes;
        editing(false);
        edit.focus();
      } catch (failure) {
        error.textContent = "Could not save the notes: " + failure.message;
        error.hidden = false;
      } finally {
        save.disabled = false;
      }
    }

    edit.addEventListener("click", () => editing(true));
    cancel.addEventListener("click", () => {
      textarea.value = saved;
      editing(false);
      edit.focus();
    });
    form.addEventListener("submit", submit);
    cancel.hidden = false;
    editing(false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const initial = document.getElementById("run-state");
    if (initial) applyRunState(JSON.parse(initial.textContent));
    const notes = document.querySelector("[data-notes]");
    if (notes) notesEditor(notes);
  });
})();
