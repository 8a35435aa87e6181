/* Compare page: "Only differing keys" hides the config rows where every run agrees; the
 * sweep panels are drawn from the figures the server built (panels.js) when they come near
 * the viewport (a sweep of 200 runs takes a second to draw, which the charts above them
 * should not wait for), and picking another metric or x asks the server for them. */
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
    const specs = new Map(JSON.parse(config.textContent).map((spec) => [String(spec.index), spec]));
    const observer = new IntersectionObserver(
      (entries) =>
        entries.forEach((entry) => {
          if (!entry.isIntersecting) return;
          observer.unobserve(entry.target);
          const spec = specs.get(entry.target.dataset.sweepFigure);
          Labbook.drawPanel(entry.target, spec.figure, spec.runs);
        }),
      { rootMargin: "400px" },
    );
    document.querySelectorAll("[data-sweep-figure]").forEach((plot) => {
      if (specs.has(plot.dataset.sweepFigure)) observer.observe(plot);
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
