/* The run page's Console card: the run's stdout and stderr as its program wrote them, kept
 * up to date live.
 *
 * The page renders the card hidden, with a JSON config in <script id="console-config">:
 *   {run: 7, api: "/api/v1/runs/7/console", download: "/api/v1/runs/7/console.txt",
 *    tail: 500, shown: 5000, maxBytes: 20971520, maxSearch: 200}
 * The script reads the last `tail` lines (GET api?tail=) and shows the card once the run has
 * a line (the page's render costs no query for them). Each answer is
 * {total, bytes, dropped, lines: [{number, stream, text, timestamp}]}.
 *
 * - Lines are drawn from text nodes and spans only, never HTML: ANSI SGR codes (bold, dim,
 *   italic, underline, the 8/16 colours; 256 colours and truecolor at the nearest of the 16)
 *   become classes (ansi-fg-N, ansi-bg-N, ansi-bold...), every other escape sequence and
 *   control character is dropped, and a carriage return keeps what was written after it
 *   (a progress bar shows its last state). Each line starts with no colour: a line loaded
 *   on its own (the tail, an earlier page, a match) looks the same wherever it is shown.
 * - Line numbers (the API's, from 0, shown from 1 as in the downloaded file) stand in a
 *   gutter, which copying leaves out; stderr lines are marked in it.
 * - Live tail: a "run.console" message (charts.js owns the socket and re-dispatches each
 *   message on document as "labbook:live-message") appends its lines; more than the server
 *   sends in one message ("truncated") reads the tail again. The box stays at the bottom
 *   unless the reader scrolled up: then "N new lines ↓" brings it back. At most `shown`
 *   lines are kept while following; the oldest go.
 * - "Load earlier lines" reads the `tail` lines before the first one shown (?start=&limit=).
 * - The search box asks the server (?search=, debounced) for the lines holding the text, in
 *   order, `tail` at a time ("More matches"); "Back to the tail" (or Escape) ends it.
 * - On every (re)subscription ("labbook:live-connected") the lines after the last one shown
 *   are read: what was written while the socket was down reaches no message.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const SEARCH_DELAY_MS = 300;
  const BOTTOM_SLACK = 8; // px from the bottom that still count as "at the bottom"
  const MIB = 1024 * 1024;
  // CSI (colours, cursor moves), OSC (titles, links) and two-character sequences: the
  // server's tracking.console._ANSI, with the CSI's parameters and final byte captured.
  const ESCAPES = /\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;
  const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f]/g; // all but the tab, after the sequences
  // xterm's 16 colours: where 256-colour and truecolor codes find their nearest.
  const BASIC_RGB = [
    [0, 0, 0], [205, 0, 0], [0, 205, 0], [205, 205, 0], [0, 0, 238], [205, 0, 205], [0, 205, 205], [229, 229, 229],
    [127, 127, 127], [255, 0, 0], [0, 255, 0], [255, 255, 0], [92, 92, 255], [255, 0, 255], [0, 255, 255], [255, 255, 255],
  ];

  /* --- Small helpers ------------------------------------------------------------------- */

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => {
      if (value === false || value === null || value === undefined) return;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    });
    children.forEach((child) => child !== null && child !== undefined && node.append(child));
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(body && body.error ? body.error.message : "error " + response.status);
    }
    return response.json();
  }

  function plural(n, word) {
    return n.toLocaleString() + " " + word + (n === 1 ? "" : "s");
  }

  function mebibytes(bytes) {
    const value = bytes / MIB;
    return (Number.isInteger(value) ? String(value) : value.toFixed(1)) + " MiB";
  }

  /* --- ANSI colours -------------------------------------------------------------------- */

  function nearestBasic(r, g, b) {
    let best = 0;
    let distance = Infinity;
    BASIC_RGB.forEach(([R, G, B], index) => {
      const d = (r - R) ** 2 + (g - G) ** 2 + (b - B) ** 2;
      if (d < distance) {
        distance = d;
        best = index;
      }
    });
    return best;
  }

  /* A colour of the 256-colour palette as one of the 16. */
  function from256(n) {
    if (!(n >= 0 && n <= 255)) return null;
    if (n < 16) return n;
    if (n >= 232) {
      const grey = 8 + (n - 232) * 10;
      return nearestBasic(grey, grey, grey);
    }
    const level = (v) => (v ? 55 + v * 40 : 0);
    const i = n - 16;
    return nearestBasic(level(Math.floor(i / 36)), level(Math.floor(i / 6) % 6), level(i % 6));
  }

  function plainStyle() {
    return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, strike: false, inverse: false };
  }

  /* `style` after an SGR sequence's parameters ("1;31", "38;5;208", "" for a reset). */
  function applySgr(style, params) {
    const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code === 0) Object.assign(style, plainStyle());
      else if (code === 1) style.bold = true;
      else if (code === 2) style.dim = true;
      else if (code === 3) style.italic = true;
      else if (code === 4) style.underline = true;
      else if (code === 7) style.inverse = true;
      else if (code === 9) style.strike = true;
      else if (code === 22) style.bold = style.dim = false;
      else if (code === 23) style.italic = false;
      else if (code === 24) style.underline = false;
      else if (code === 27) style.inverse = false;
      else if (code === 29) style.strike = false;
      else if (code >= 30 && code <= 37) style.fg = code - 30;
      else if (code === 39) style.fg = null;
      else if (code >= 40 && code <= 47) style.bg = code - 40;
      else if (code === 49) style.bg = null;
      else if (code >= 90 && code <= 97) style.fg = code - 90 + 8;
      else if (code >= 100 && code <= 107) style.bg = code - 100 + 8;
      else if (code === 38 || code === 48) {
        let colour = null;
        if (codes[i + 1] === 5) {
          colour = from256(codes[i + 2]);
          i += 2;
        } else if (codes[i + 1] === 2) {
          const [r, g, b] = codes.slice(i + 2, i + 5);
          colour = [r, g, b].every((v) => v >= 0 && v <= 255) ? nearestBasic(r, g, b) : null;
          i += 4;
        }
        if (code === 38) style.fg = colour;
        else style.bg = colour;
      }
    }
  }

  function styleClasses(style) {
    const fg = style.inverse ? style.bg : style.fg;
    const bg = style.inverse ? style.fg : style.bg;
    const classes = [];
    if (fg !== null) classes.push("ansi-fg-" + fg);
    else if (style.inverse) classes.push("ansi-fg-inverse");
    if (bg !== null) classes.push("ansi-bg-" + bg);
    else if (style.inverse) classes.push("ansi-bg-inverse");
    ["bold", "dim", "italic", "underline", "strike"].forEach((name) => style[name] && classes.push("ansi-" + name));
    return classes.join(" ");
  }

  /* What a terminal would show of a line: after its last carriage return (a progress bar
   * redrawn in place shows its last state). */
  function visibleText(text) {
    const trimmed = text.replace(/\r+$/, "");
    const cut = trimmed.lastIndexOf("\r");
    return cut < 0 ? trimmed : trimmed.slice(cut + 1);
  }

  /* A line's text as [{text, classes}] runs: colours as classes, other escapes dropped. */
  function ansiRuns(text) {
    const runs = [];
    const style = plainStyle();
    const source = visibleText(text);
    const push = (part) => {
      const clean = part.replace(CONTROLS, "");
      if (clean) runs.push({ text: clean, classes: styleClasses(style) });
    };
    let at = 0;
    ESCAPES.lastIndex = 0;
    let match;
    while ((match = ESCAPES.exec(source)) !== null) {
      push(source.slice(at, match.index));
      at = ESCAPES.lastIndex;
      if (match[2] === "m") applySgr(style, match[1]);
    }
    push(source.slice(at));
    return runs;
  }
  Labbook.ansiRuns = ansiRuns;

  /* `text` with each occurrence of `needle` (lower case) in a <mark>. */
  function marked(text, needle) {
    if (!needle) return [text];
    const lower = text.toLowerCase();
    const parts = [];
    let at = 0;
    let found = lower.indexOf(needle);
    while (found >= 0 && needle.length) {
      if (found > at) parts.push(text.slice(at, found));
      parts.push(el("mark", { text: text.slice(found, found + needle.length) }));
      at = found + needle.length;
      found = lower.indexOf(needle, at);
    }
    if (at < text.length) parts.push(text.slice(at));
    return parts;
  }

  function lineNode(line, needle) {
    const stderr = line.stream === "stderr";
    const content = ansiRuns(line.text).map((run) => {
      const parts = marked(run.text, needle);
      return run.classes ? el("span", { class: run.classes }, ...parts) : parts;
    });
    return el(
      "div",
      { class: "console-line" + (stderr ? " console-stderr" : ""), "data-number": String(line.number), "data-stream": line.stream },
      el("span", { class: "console-n", title: stderr ? "stderr" : null, text: String(line.number + 1) }),
      el("span", { class: "console-text" }, ...content.flat()),
    );
  }

  /* --- The card ------------------------------------------------------------------------ */

  function Console(section, config) {
    this.section = section;
    this.config = config;
    const find = (name) => section.querySelector("[data-console-" + name + "]");
    this.box = find("box");
    this.list = find("lines");
    this.earlier = find("earlier");
    this.later = find("later");
    this.jump = find("jump");
    this.search = find("search");
    this.found = find("found");
    this.back = find("back");
    this.droppedNote = find("dropped");
    this.statusLine = find("status");
    this.count = find("count");
    this.mode = "tail"; // or "search"
    this.needle = ""; // the search shown
    this.first = null; // the first and last line numbers shown
    this.last = null;
    this.total = 0;
    this.follow = true; // at the bottom, and staying there as lines arrive
    this.unseen = 0; // lines appended below while the reader was scrolled up
    this.asked = 0; // answers to an older request than the newest are dropped
    this.loading = null; // the tail's read while in flight
    this.queued = []; // live lines that arrived during it
    this.catchUpAfter = false;
    this.timer = null;
    this.bind();
  }

  Console.prototype.url = function (params) {
    return this.config.api + "?" + new URLSearchParams(params).toString();
  };

  Console.prototype.show = function () {
    if (!this.section.hidden) return;
    this.section.hidden = false;
    if (this.follow) this.toBottom();
  };

  Console.prototype.toBottom = function () {
    this.box.scrollTop = this.box.scrollHeight;
    this.follow = true;
    this.unseen = 0;
    this.jump.hidden = true;
  };

  Console.prototype.atBottom = function () {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight <= BOTTOM_SLACK;
  };

  /* A message in place of the lines (an error, with Retry); "" hides it. */
  Console.prototype.status = function (text, retry) {
    this.statusLine.hidden = !text;
    this.statusLine.replaceChildren();
    if (!text) return;
    this.statusLine.className = "console-status" + (retry ? " console-error" : " muted");
    this.statusLine.setAttribute("role", retry ? "alert" : "status");
    this.statusLine.append(text);
    if (retry) {
      const again = el("button", { type: "button", class: "button secondary small", text: "Retry" });
      again.addEventListener("click", retry);
      this.statusLine.append(" ", again);
    }
  };

  /* The count and the note about lines past the cap, from an answer's totals. */
  Console.prototype.totals = function (body) {
    this.total = body.total;
    this.describe();
    const note = this.droppedNote;
    note.hidden = !body.dropped;
    note.textContent = body.dropped
      ? plural(body.dropped, "line") + " past the " + mebibytes(this.config.maxBytes) + " cap " + (body.dropped === 1 ? "was" : "were") +
        " not kept; the console holds the first " + mebibytes(body.bytes) + "."
      : "";
  };

  Console.prototype.describe = function () {
    this.count.textContent = this.total ? plural(this.total, "line") : "";
  };

  /* --- The tail --- */

  Console.prototype.loadTail = function () {
    const asked = ++this.asked;
    const read = (async () => {
      let body;
      try {
        body = await getJSON(this.url({ tail: this.config.tail }));
      } catch (error) {
        if (asked !== this.asked) return;
        this.show();
        this.status("Could not load the console: " + error.message, () => this.loadTail());
        return;
      }
      if (asked !== this.asked) return;
      this.status("");
      this.totals(body);
      this.list.replaceChildren(...body.lines.map((line) => lineNode(line, "")));
      this.first = body.lines.length ? body.lines[0].number : null;
      this.last = body.lines.length ? body.lines[body.lines.length - 1].number : null;
      this.earlier.hidden = !(this.first > 0);
      this.later.hidden = true;
      this.list.dataset.mode = "tail";
      if (body.total || body.lines.length) this.show();
      this.toBottom();
    })();
    this.loading = read;
    read.finally(() => {
      if (this.loading !== read) return;
      this.loading = null;
      const queued = this.queued.splice(0);
      if (this.mode === "tail" && queued.length) this.append(queued);
      if (this.catchUpAfter) {
        this.catchUpAfter = false;
        this.catchUp();
      }
    });
    return read;
  };

  /* Lines after the last one shown, in order (older or repeated ones are skipped). */
  Console.prototype.append = function (lines) {
    const fresh = lines.filter((line) => this.last === null || line.number > this.last);
    if (!fresh.length) return;
    const follow = this.follow;
    this.list.append(...fresh.map((line) => lineNode(line, "")));
    if (this.first === null) this.first = fresh[0].number;
    this.last = fresh[fresh.length - 1].number;
    if (follow) {
      const extra = this.list.children.length - this.config.shown;
      for (let k = 0; k < extra; k++) this.list.firstElementChild.remove();
      if (extra > 0) {
        this.first = Number(this.list.firstElementChild.dataset.number);
        this.earlier.hidden = false;
      }
      this.toBottom();
    } else {
      this.unseen += fresh.length;
      this.jump.textContent = plural(this.unseen, "new line") + " \u2193";
      this.jump.hidden = false;
    }
  };

  /* "Load earlier lines": the `tail` lines before the first one shown, the view kept still. */
  Console.prototype.loadEarlier = async function () {
    if (this.mode !== "tail" || !(this.first > 0)) return;
    const asked = this.asked;
    const before = this.first;
    const start = Math.max(0, before - this.config.tail);
    this.earlier.disabled = true;
    let body;
    try {
      body = await getJSON(this.url({ start: start, limit: before - start }));
    } catch (error) {
      this.earlier.disabled = false;
      if (asked === this.asked) this.status("Could not load earlier lines: " + error.message, () => this.loadEarlier());
      return;
    }
    this.earlier.disabled = false;
    if (asked !== this.asked || this.first !== before) return; // the view changed meanwhile
    this.status("");
    const lines = body.lines.filter((line) => line.number < before);
    const height = this.box.scrollHeight;
    this.list.prepend(...lines.map((line) => lineNode(line, "")));
    this.box.scrollTop += this.box.scrollHeight - height;
    if (lines.length) this.first = lines[0].number;
    this.earlier.hidden = !lines.length || !(this.first > 0);
  };

  /* A "run.console" message. */
  Console.prototype.onMessage = function (msg) {
    const lines = msg.lines || [];
    if (!lines.length) return;
    this.show();
    if (!msg.truncated) {
      this.total += lines.length;
      this.describe();
    }
    if (this.mode !== "tail") return; // "Back to the tail" reads it
    if (msg.truncated) {
      this.loadTail();
      return;
    }
    if (this.loading) this.queued.push(...lines);
    else this.append(lines);
  };

  /* On each (re)subscription: the lines written since the last one shown. */
  Console.prototype.catchUp = async function () {
    if (this.mode !== "tail") return;
    if (this.loading) {
      this.catchUpAfter = true;
      return;
    }
    if (this.last === null) {
      this.loadTail();
      return;
    }
    const asked = this.asked;
    let body;
    try {
      body = await getJSON(this.url({ start: this.last + 1, limit: this.config.tail }));
    } catch (error) {
      return; // the next subscription tries again
    }
    if (asked !== this.asked || this.mode !== "tail") return;
    if (body.lines.length >= this.config.tail) {
      this.loadTail(); // more than a page behind: the tail
      return;
    }
    this.totals(body);
    this.append(body.lines);
  };

  /* --- Search --- */

  Console.prototype.searchSoon = function () {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.runSearch(), SEARCH_DELAY_MS);
  };

  Console.prototype.runSearch = async function (more) {
    window.clearTimeout(this.timer);
    const needle = this.search.value.slice(0, this.config.maxSearch);
    if (!needle.trim()) {
      if (this.mode === "search") this.backToTail();
      return;
    }
    if (!more && this.mode === "search" && needle === this.needle) return;
    const asked = ++this.asked;
    this.mode = "search";
    this.back.hidden = false;
    this.earlier.hidden = true;
    this.jump.hidden = true;
    const start = more ? this.last + 1 : 0;
    const limit = this.config.tail;
    if (!more) this.found.textContent = "Searching…";
    this.later.disabled = true;
    let body;
    try {
      body = await getJSON(this.url({ search: needle, start: start, limit: limit }));
    } catch (error) {
      if (asked !== this.asked) return;
      this.later.disabled = false;
      this.found.textContent = "";
      this.status("Could not search the console: " + error.message, () => this.runSearch(more));
      return;
    }
    if (asked !== this.asked) return;
    this.later.disabled = false;
    this.status("");
    this.totals(body);
    const lower = needle.toLowerCase();
    const nodes = body.lines.map((line) => lineNode(line, lower));
    if (more) this.list.append(...nodes);
    else {
      this.needle = needle;
      this.matches = 0;
      this.list.replaceChildren(...nodes);
      this.list.dataset.mode = "search";
      this.box.scrollTop = 0;
    }
    this.matches += body.lines.length;
    if (body.lines.length) this.last = body.lines[body.lines.length - 1].number;
    this.later.hidden = body.lines.length < limit;
    const label = "\u201c" + needle + "\u201d";
    this.found.textContent = this.matches
      ? (this.later.hidden ? plural(this.matches, "line") : "The first " + plural(this.matches, "line")) + " holding " + label
      : "No match";
    if (!this.matches) this.list.append(el("p", { class: "console-empty", text: "No line holds " + label + "." }));
  };

  Console.prototype.backToTail = function () {
    window.clearTimeout(this.timer);
    this.search.value = "";
    this.mode = "tail";
    this.needle = "";
    this.back.hidden = true;
    this.later.hidden = true;
    this.found.textContent = "";
    this.queued = [];
    return this.loadTail();
  };

  /* --- Events --- */

  Console.prototype.bind = function () {
    this.box.addEventListener("scroll", () => {
      if (this.mode !== "tail") return;
      this.follow = this.atBottom();
      if (this.follow) {
        this.unseen = 0;
        this.jump.hidden = true;
      }
    });
    this.jump.addEventListener("click", () => this.toBottom());
    this.earlier.addEventListener("click", () => this.loadEarlier());
    this.later.addEventListener("click", () => this.runSearch(true));
    this.back.addEventListener("click", () => {
      this.backToTail();
      this.search.focus();
    });
    this.search.addEventListener("input", () => this.searchSoon());
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.runSearch();
      } else if (event.key === "Escape" && this.mode === "search") {
        event.preventDefault();
        this.backToTail();
      }
    });
  };

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.querySelector("[data-console]");
    const config = document.getElementById("console-config");
    if (!section || !config) return;
    const panel = new Console(section, JSON.parse(config.textContent));
    Labbook.console = panel;
    document.addEventListener("labbook:live-message", (event) => {
      const msg = event.detail;
      if (msg.type === "run.console" && msg.run === panel.config.run) panel.onMessage(msg);
    });
    document.addEventListener("labbook:live-connected", () => panel.catchUp());
    panel.loadTail();
  });
})();
