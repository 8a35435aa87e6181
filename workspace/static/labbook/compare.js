/* Compare page: "Only differing keys" hides the config rows where every run agrees; the
 * sweep panels are drawn from the figures the server built (panels.js), and picking another
 * metric or x asks the server for them. */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});

  function differing() {
    const toggle = document.querySelector("[data-only-differing]");
    const table = document.querySelector("[data-diff-table]");
    if (!toggle || !table) return;
    const apply = () => table.classList.toggle("only-differing", toggle.checked);
    toggle.addEventListener("change", apply);
    apply();
  }

  function sweep() {
    const config = document.getElementById("sweep-config");
    if (!config || !window.Plotly) return;
    JSON.parse(config.textContent).forEach((spec) => {
      const plot = document.querySelector('[data-sweep-figure="' + spec.index + '"]');
      if (plot) Labbook.drawPanel(plot, spec.figure, spec.runs);
    });
    const form = document.querySelector("[data-sweep-form]");
    form.querySelectorAll("[data-sweep-choice]").forEach((select) =>
      select.addEventListener("change", () => form.requestSubmit()),
    );
  }

  document.addEventListener("DOMContentLoaded", function () {
    differing();
    sweep();
  });
})();
