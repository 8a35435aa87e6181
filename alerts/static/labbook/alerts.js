// Alert forms: show only the fieldset of the chosen trigger (rules) or kind (destinations).
// The server reads only the chosen one; hidden parts are also disabled so they are not sent.
(function () {
  function toggle(form, select, attr) {
    form.querySelectorAll("[" + attr + "]").forEach(function (el) {
      if (el === select) return;
      var on = el.getAttribute(attr).split(" ").indexOf(select.value) !== -1;
      el.hidden = !on;
      if (el.tagName === "FIELDSET") {
        el.disabled = !on;
      } else {  // a hidden part inside a shown fieldset: its inputs must not be sent either
        el.querySelectorAll("input, select, textarea").forEach(function (input) { input.disabled = !on; });
      }
    });
  }
  [["[data-trigger-form]", "[data-trigger-select]", "data-trigger"],
   ["[data-kind-form]", "[data-kind-select]", "data-kind"]].forEach(function (spec) {
    document.querySelectorAll(spec[0]).forEach(function (form) {
      var select = form.querySelector(spec[1]);
      if (!select) return;
      select.addEventListener("change", function () { toggle(form, select, spec[2]); });
      toggle(form, select, spec[2]);
    });
  });
})();
