/* Labbook mention autocomplete: "@" in a comment box offers the team's members.
 *
 *   const members = Labbook.teamMembers("/api/v1/teams/acme/members");  // fetched once, lazily
 *   Labbook.completeMentions(textarea, members);
 *
 * Typing "@al" lists, under the box, the members whose username, name or a word of
 * their name starts with "al" (any case). Up and Down move, Enter or Tab insert
 * "@username ", Escape closes; a click inserts too. The textarea keeps the focus and
 * names the active option with aria-activedescendant, as a combobox does; a status
 * line tells screen readers how many teammates match. comments.js calls this for the
 * new-comment box and for every reply and edit box it opens.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const MAX_OPTIONS = 8;
  // The "@name" typed just before the caret; not the "@" inside an address like a@b.c
  // (the same rule as MENTION in reports_app/markup.py).
  const TYPING = /(?:^|[^\p{L}\p{N}_@.+-])@([\p{L}\p{N}_.+-]*)$/u;
  let lists = 0;

  /* A function answering the members at ``url`` (a promise); one request, made on first use. */
  Labbook.teamMembers = function (url) {
    let loaded = null;
    return function () {
      if (!loaded) {
        loaded = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then((response) => {
            if (!response.ok) throw new Error("The server answered " + response.status + ".");
            return response.json();
          })
          .catch(() => {
            loaded = null; // try again at the next "@"
            return [];
          });
      }
      return loaded;
    };
  };

  function matches(member, prefix) {
    const wanted = prefix.toLowerCase();
    const name = member.name || "";
    return [member.username, name, ...name.split(/\s+/)].some(
      (word) => word && word.toLowerCase().startsWith(wanted),
    );
  }

  function Completer(area, members) {
    this.area = area;
    this.members = members;
    this.options = []; // the members offered
    this.active = -1;
    this.start = -1; // where the "@" being completed is
    this.list = document.createElement("ul");
    this.list.id = "mention-list-" + ++lists;
    this.list.className = "mention-list";
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", "Teammates to mention");
    this.list.hidden = true;
    this.status = document.createElement("span");
    this.status.className = "visually-hidden";
    this.status.setAttribute("role", "status");
    area.after(this.list, this.status);
    area.setAttribute("aria-autocomplete", "list");
    area.setAttribute("aria-controls", this.list.id);
    area.addEventListener("input", () => this.update());
    area.addEventListener("click", () => this.update()); // the caret moved
    area.addEventListener("keydown", (event) => this.onKey(event));
    area.addEventListener("blur", () => this.close());
    this.list.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus
    this.list.addEventListener("click", (event) => {
      const option = event.target.closest("[role=option]");
      if (option) this.choose(Number(option.dataset.index));
    });
  }

  Completer.prototype.update = async function () {
    const caret = this.area.selectionStart;
    const before = this.area.value.slice(0, caret);
    const typed = caret === this.area.selectionEnd && TYPING.exec(before);
    if (!typed) return this.close();
    const members = await this.members();
    const moved = this.area.selectionStart !== caret || this.area.value.slice(0, caret) !== before;
    if (moved || document.activeElement !== this.area) return; // a later update answers
    this.start = caret - typed[1].length - 1;
    this.options = members.filter((member) => matches(member, typed[1])).slice(0, MAX_OPTIONS);
    if (!this.options.length) return this.close();
    this.show();
  };

  Completer.prototype.show = function () {
    const options = this.options.map((member, index) => {
      const option = document.createElement("li");
      option.id = this.list.id + "-" + index;
      option.dataset.index = index;
      option.setAttribute("role", "option");
      const handle = document.createElement("span");
      handle.className = "mention-handle";
      handle.textContent = member.username;
      option.appendChild(handle);
      if (member.name) {
        const name = document.createElement("span");
        name.className = "muted";
        name.textContent = member.name;
        option.append(" ", name);
      }
      return option;
    });
    this.list.replaceChildren(...options);
    this.list.style.left = this.area.offsetLeft + "px";
    this.list.style.top = this.area.offsetTop + this.area.offsetHeight + "px";
    this.list.hidden = false;
    const count = options.length;
    this.status.textContent =
      count + (count === 1 ? " teammate matches" : " teammates match") +
      ": Up and Down to choose, Enter to insert, Escape to close.";
    this.select(0);
  };

  Completer.prototype.select = function (index) {
    this.active = index;
    Array.from(this.list.children).forEach((option, at) => {
      option.setAttribute("aria-selected", String(at === index));
    });
    const option = this.list.children[index];
    this.area.setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  };

  Completer.prototype.onKey = function (event) {
    if (this.list.hidden || event.isComposing) return;
    const count = this.options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      this.select((this.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count);
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      event.preventDefault();
      this.choose(this.active);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // closes the list, not what holds the box
      this.close();
    }
  };

  /* Replace the "@..." being typed with "@username " and put the caret after it. */
  Completer.prototype.choose = function (index) {
    const member = this.options[index];
    if (!member) return;
    const caret = this.area.selectionStart;
    const spaced = this.area.value.charAt(caret) === " ";
    this.area.setRangeText("@" + member.username + (spaced ? "" : " "), this.start, caret, "end");
    if (spaced) this.area.setSelectionRange(this.area.selectionEnd + 1, this.area.selectionEnd + 1);
    this.close();
    this.area.focus();
  };

  Completer.prototype.close = function () {
    if (this.list.hidden) return;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.status.textContent = "";
    this.options = [];
    this.active = -1;
    this.area.removeAttribute("aria-activedescendant");
  };

  /* Autocomplete "@" mentions in ``area`` (once per box) from ``members()``. */
  Labbook.completeMentions = function (area, members) {
    if (area.dataset.mentions) return;
    area.dataset.mentions = "on";
    new Completer(area, members);
  };
})();
