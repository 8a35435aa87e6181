/* Compare page: "Only differing keys" hides the config rows where every run agrees. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.querySelector("[data-only-differing]");
    const table = document.querySelector("[data-diff-table]");
    if (!toggle || !table) return;
    const apply = () => table.classList.toggle("only-differing", toggle.checked);
    toggle.addEventListener("change", apply);
    apply();
  });
})();
