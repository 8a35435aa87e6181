/* Copy buttons of the settings pages: <button data-copy="ID"> copies the value (an input)
 * or the text (anything else) of the element with that id. Without the Clipboard API
 * (plain http on another host, or permission refused) it selects the text instead, so
 * Ctrl+C / Cmd+C finishes the job.
 */
(function () {
  "use strict";

  function textOf(target) {
    return "value" in target ? target.value : target.textContent;
  }

  function select(target) {
    if (typeof target.select === "function") {
      target.focus();
      target.select();
      return;
    }
    const range = document.createRange();
    range.selectNodeContents(target);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function say(button, message) {
    const status = button.parentElement.querySelector("[data-copy-status]");
    if (status) {
      status.textContent = message;
    }
  }

  async function copy(button) {
    const target = document.getElementById(button.dataset.copy);
    if (!target) {
      return;
    }
    try {
      await navigator.clipboard.writeText(textOf(target));
      say(button, "Copied");
    } catch (error) {
      select(target);
      say(button, "Selected: press Ctrl+C (⌘C on a Mac) to copy");
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (button) {
      copy(button);
    }
  });
})();
