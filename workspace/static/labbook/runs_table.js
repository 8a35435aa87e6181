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
