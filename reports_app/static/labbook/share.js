/* Share dialog: send the browser's UTC offset with the expiry, so "17:00" means 17:00
 * where the user is (the offset of that very date, across daylight saving changes).
 */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const form = event.target.closest('[data-form="create-link"]');
    if (!form) return;
    const value = form.elements.expires_at.value;
    const when = value ? new Date(value) : new Date();
    form.querySelector("[data-tz-offset]").value = String(when.getTimezoneOffset());
  });
})();
