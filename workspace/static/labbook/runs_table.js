/* Project page: status badges and summary cells follow the project's runs live (re-read
 * from the API at each subscription); new runs are announced with a link that reloads the
 * table. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    const table = document.querySelector("table.runs[data-project]");
    const banner = document.querySelector("[data-new-runs]");
    if (!table && !banner) return;
    const project = (table || banner).dataset.project || document.body.dataset.project;
    if (!project) return;
    let created = 0;
    Labbook.live(
      { projects: [project] },
      {
        message(msg) {
          if (msg.type !== "project.run") return;
          if (msg.status) Labbook.updateStatus(msg.run, msg.status);
          Object.entries(msg.summary || {}).forEach(([key, value]) => {
            Labbook.updateSummary(msg.run, key, value);
          });
          if (msg.created && banner) {
            created += 1;
            banner.querySelector("[data-new-runs-text]").textContent =
              created + " new run" + (created === 1 ? "" : "s");
            banner.hidden = false;
          }
        },
        connected() {
          // Every subscription, the first too: changes since the render reach no socket.
          if (!table) return;
          const ids = [...table.querySelectorAll("tr[data-run-id]")].map((row) => row.dataset.runId);
          Labbook.refreshRuns(table.dataset.runsApi, ids);
        },
      },
    );
  });
})();

/* Project page: the table's own controls. Select all (the page, then every matching run),
 * the column picker (find, tick, reorder by dragging or with the arrows), collapsible
 * groups, opening a saved view from its list, and the filters folded on a phone. */
(function () {
  "use strict";

  function selectAll(form) {
    const all = form.querySelector("[data-select-all]");
    const boxes = () => [...form.querySelectorAll('tbody input[name="runs"]')];
    const matching = form.querySelector("[data-all-matching]");
    const banner = form.querySelector("[data-select-all-matching]");
    if (!all) return;
    const total = banner ? Number(banner.dataset.total) : 0;
    function showBanner() {
      if (!banner) return;
      const ticked = boxes().filter((box) => box.checked).length;
      const everyOne = ticked > 0 && ticked === boxes().length;
      const text = banner.querySelector("[data-select-all-text]");
      const button = banner.querySelector("[data-select-all-matching-button]");
      if (matching.value === "1") {
        text.textContent = "All " + total + " matching runs are selected.";
        button.hidden = true;
      } else {
        text.textContent = "All " + ticked + " runs on this page are selected.";
        button.hidden = false;
      }
      banner.hidden = !(everyOne && total > ticked) && matching.value !== "1";
    }
    all.addEventListener("change", () => {
      boxes().forEach((box) => (box.checked = all.checked));
      matching.value = "0";
      showBanner();
    });
    form.addEventListener("change", (event) => {
      if (event.target.name !== "runs") return;
      matching.value = "0";
      const ticked = boxes().filter((box) => box.checked).length;
      all.checked = ticked === boxes().length;
      all.indeterminate = ticked > 0 && ticked < boxes().length;
      showBanner();
    });
    if (banner) {
      banner.querySelector("[data-select-all-matching-button]").addEventListener("click", () => {
        matching.value = "1";
        showBanner();
      });
    }
  }

  function columnPicker(picker) {
    const list = picker.querySelector("[data-column-list]");
    const search = picker.querySelector("[data-column-search]");
    const none = picker.querySelector("[data-column-none]");
    if (!list) return;
    const items = () => [...list.querySelectorAll("li[data-column]")];
    const checkedItems = () => items().filter((li) => li.querySelector("input").checked);
    let dragged = null;

    search.addEventListener("input", () => {
      const needle = search.value.trim().toLowerCase();
      let shown = 0;
      items().forEach((li) => {
        const match = !needle || li.dataset.column.toLowerCase().includes(needle);
        li.hidden = !match;
        shown += match ? 1 : 0;
      });
      none.hidden = shown > 0;
    });
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault(); // Enter would submit the runs form
    });
    list.addEventListener("change", (event) => {
      const li = event.target.closest("li[data-column]");
      if (!li) return;
      li.draggable = event.target.checked;
      // A ticked column joins the end of the chosen ones; an unticked one leaves them.
      const chosen = checkedItems().filter((item) => item !== li);
      const anchor = chosen.length ? chosen[chosen.length - 1].nextSibling : list.firstChild;
      list.insertBefore(li, anchor);
    });
    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-move]");
      if (!button) return;
      const li = button.closest("li");
      if (button.dataset.move === "up" && li.previousElementSibling) {
        list.insertBefore(li, li.previousElementSibling);
      } else if (button.dataset.move === "down" && li.nextElementSibling) {
        list.insertBefore(li.nextElementSibling, li);
      }
      button.focus();
    });
    list.addEventListener("dragstart", (event) => {
      dragged = event.target.closest("li[data-column]");
      if (!dragged) return;
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.column);
    });
    list.addEventListener("dragover", (event) => {
      const over = event.target.closest("li[data-column]");
      if (!dragged || !over || over === dragged) return;
      event.preventDefault();
      const box = over.getBoundingClientRect();
      const after = event.clientY > box.top + box.height / 2;
      list.insertBefore(dragged, after ? over.nextSibling : over);
    });
    list.addEventListener("drop", (event) => event.preventDefault());
    list.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
    });
  }

  function groups(table) {
    table.addEventListener("click", (event) => {
      const toggle = event.target.closest("[data-group-toggle]");
      if (!toggle) return;
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      const body = toggle.closest("tbody");
      body.classList.toggle("collapsed", !open);
      body.querySelectorAll("tr:not(.group-head)").forEach((row) => (row.hidden = !open));
    });
  }

  function views(bar) {
    const select = bar.querySelector("[data-view-select]");
    const open = bar.querySelector("[data-view-open]");
    if (!select) return;
    if (open) open.hidden = true; // the list opens a view on its own
    select.addEventListener("change", () => {
      if (select.value) select.form.submit();
      else window.location.assign(select.form.action);
    });
  }

  function foldFilters(details) {
    const narrow = window.matchMedia("(max-width: 700px)").matches;
    if (narrow && !details.querySelector('[aria-invalid="true"]')) details.open = false;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-runs-form]");
    if (form) selectAll(form);
    document.querySelectorAll("[data-column-picker]").forEach(columnPicker);
    const table = document.querySelector("table.runs");
    if (table) groups(table);
    const bar = document.querySelector("[data-views]");
    if (bar) views(bar);
    const filters = document.querySelector("[data-filters]");
    if (filters) foldFilters(filters);
  });
})();
