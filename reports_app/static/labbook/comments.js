/* Labbook comments: the discussion of a run or report page, through the comments API.
 *
 * The page renders section[data-comments] (templates/reports_app/includes/comments.html)
 * with a JSON config in <script id="comments-config">:
 *   {target: "run:7", api: "/api/v1/comments", me: "alice", canModerate: true, anchors: false,
 *    members: "/api/v1/teams/acme/members"}
 * Threads are one level deep: replies hang off the thread's first comment. Bodies arrive
 * as HTML the server sanitized (body_html, its nh3 allowlist, with mention badges and run
 * links the server made); everything else is set as text. Every comment box completes
 * "@" mentions from the team's members (mentions.js). "comment.changed" messages from the websocket (reports_app/live.py) update the
 * threads in place, so a reply being typed survives a teammate's new comment.
 *
 *   Labbook.commentOn("r-results", "Results")  // start a thread about a report heading
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});

  /* What a thread's anchor is called on the page: the heading's text, the chart's label. */
  function anchorLabel(anchor) {
    const target = document.getElementById(anchor);
    if (!target) return "#" + anchor; // the heading was renamed or removed since
    if (target.matches("figure")) {
      return target.querySelector("[aria-label]")?.getAttribute("aria-label") || "a chart";
    }
    const copy = target.cloneNode(true);
    copy.querySelectorAll("button").forEach((node) => node.remove());
    return "“" + copy.textContent.trim() + "”";
  }

  /* A "Comment" button beside each heading and chart of a report: starts an anchored thread. */
  function addAnchorButtons() {
    const targets = document.querySelectorAll(
      ".report-body h1[id], .report-body h2[id], .report-body h3[id], .report-body figure.report-chart[id]",
    );
    targets.forEach(function (target) {
      const label = target.matches("figure")
        ? target.querySelector("[aria-label]")?.getAttribute("aria-label") || "Chart"
        : target.textContent.trim();
      const add = button("Comment", "anchor", "anchor-comment");
      add.setAttribute("aria-label", "Comment on “" + label + "”");
      add.addEventListener("click", function () {
        Labbook.commentOn(target.id, label);
        document.getElementById("comments")?.scrollIntoView({ behavior: "smooth" });
      });
      target.appendChild(add);
    });
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, action, extra) {
    const node = element("button", "link comment-action" + (extra ? " " + extra : ""), label);
    node.type = "button";
    node.dataset.action = action;
    return node;
  }

  function timeOf(iso) {
    const node = element("time", "", new Date(iso).toLocaleString());
    node.dateTime = iso;
    return node;
  }

  function Discussion(root, config) {
    this.root = root;
    this.config = config;
    this.comments = new Map(); // id -> comment, as the API answers it
    this.list = root.querySelector("[data-comment-threads]");
    this.status = root.querySelector("[data-comments-status]");
    this.count = root.querySelector("[data-comments-count]");
    this.form = root.querySelector("[data-comment-form]");
    this.csrf = this.form.querySelector("[name=csrfmiddlewaretoken]").value;
    this.anchor = "";
    this.members = Labbook.teamMembers ? Labbook.teamMembers(config.members) : null;
    this.completeMentions(this.form.elements.body);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.post(this.form, { body: this.form.elements.body.value, anchor: this.anchor });
    });
    root.querySelector("[data-comment-anchor-clear]").addEventListener("click", () => {
      this.setAnchor("", "");
    });
    this.list.addEventListener("click", (event) => this.onAction(event));
  }

  Discussion.prototype.completeMentions = function (area) {
    if (this.members && this.config.members) Labbook.completeMentions(area, this.members);
  };

  Discussion.prototype.request = async function (method, url, body) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": this.csrf,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new Error(error.message || "The server answered " + response.status + ".");
    }
    return data;
  };

  Discussion.prototype.load = async function () {
    const query = new URLSearchParams({ target: this.config.target });
    try {
      const comments = await this.request("GET", this.config.api + "?" + query);
      comments.forEach((comment) => this.upsert(comment));
      this.status.hidden = true;
      this.showLinked();
    } catch (error) {
      this.status.hidden = false;
      this.status.textContent = "Comments could not be loaded: " + error.message;
    }
  };

  /* A link from a mention email (#comment-12) scrolls to its comment once it is drawn. */
  Discussion.prototype.showLinked = function () {
    const match = /^#comment-(\d+)$/.exec(window.location.hash);
    const node = match && document.getElementById("comment-" + match[1]);
    if (!node) return;
    node.closest(".comment-thread").classList.add("is-open");
    node.classList.add("is-linked");
    node.scrollIntoView({ block: "center" });
  };

  Discussion.prototype.upsert = function (comment) {
    this.comments.set(comment.id, comment);
    const thread = this.thread(comment.parent || comment.id);
    let node = document.getElementById("comment-" + comment.id);
    if (!node) {
      node = element("article", "comment");
      node.id = "comment-" + comment.id;
      node.dataset.comment = comment.id;
      const place = comment.parent ? thread.querySelector(".comment-replies") : thread;
      if (comment.parent) {
        place.appendChild(element("li")).appendChild(node);
      } else {
        thread.insertBefore(node, thread.firstChild);
      }
    }
    this.fill(node, comment);
    if (!comment.parent) {
      thread.classList.toggle("is-resolved", Boolean(comment.resolved_at));
    }
    this.updateCount();
  };

  /* The thread of ``rootId``, created (empty) at the end of the list when missing. */
  Discussion.prototype.thread = function (rootId) {
    let thread = this.list.querySelector('[data-thread="' + rootId + '"]');
    if (thread) return thread;
    thread = element("li", "comment-thread");
    thread.dataset.thread = rootId;
    thread.appendChild(element("ol", "comment-replies"));
    thread.appendChild(element("p", "error comment-thread-error")).hidden = true;
    this.list.appendChild(thread);
    return thread;
  };

  Discussion.prototype.fill = function (node, comment) {
    const mine = comment.author === this.config.me && !comment.deleted;
    const head = element("header", "comment-head");
    head.appendChild(element("strong", "comment-author", comment.author || "(removed user)"));
    head.append(" ", timeOf(comment.created_at));
    if (comment.edited_at && !comment.deleted) head.append(" ", element("span", "muted", "edited"));
    if (comment.anchor && !comment.parent) {
      const link = element("a", "comment-anchor-link", anchorLabel(comment.anchor));
      link.href = "#" + comment.anchor;
      head.append(" on ", link);
    }
    if (comment.resolved_at) {
      const by = comment.resolved_by ? " by " + comment.resolved_by : "";
      head.append(" ", element("span", "comment-resolved", "Resolved" + by));
    }
    const body = element("div", "comment-body");
    if (comment.deleted) {
      body.appendChild(element("p", "muted", "This comment was deleted."));
    } else {
      body.innerHTML = comment.body_html; // sanitized by the server's allowlist
    }
    const editor = node.querySelector(".comment-edit"); // an edit in progress stays
    node.replaceChildren(head, body, this.actions(comment, mine));
    if (editor) node.appendChild(editor);
  };

  Discussion.prototype.actions = function (comment, mine) {
    const bar = element("div", "comment-actions");
    const root = !comment.parent;
    if (root) {
      bar.appendChild(button("Reply", "reply"));
      if (comment.resolved_at) bar.appendChild(button("Show thread", "toggle"));
    }
    if (root && (this.config.canModerate || comment.author === this.config.me)) {
      const label = comment.resolved_at ? "Reopen" : "Resolve";
      bar.appendChild(button(label, comment.resolved_at ? "reopen" : "resolve"));
    }
    if (mine) {
      bar.appendChild(button("Edit", "edit"));
      bar.appendChild(button("Delete", "delete", "danger"));
    }
    return bar;
  };

  Discussion.prototype.updateCount = function () {
    const shown = Array.from(this.comments.values()).filter((comment) => !comment.deleted);
    this.count.textContent = shown.length ? String(shown.length) : "";
  };

  Discussion.prototype.onAction = function (event) {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const node = target.closest("[data-comment]");
    const comment = node && this.comments.get(Number(node.dataset.comment));
    if (!comment) return;
    const thread = node.closest(".comment-thread");
    const actions = {
      reply: () => this.openReply(thread, comment),
      toggle: () => thread.classList.toggle("is-open"),
      edit: () => this.openEdit(node, comment),
      delete: () => {
        if (window.confirm("Delete this comment? Its replies stay.")) {
          this.change(thread, "DELETE", comment, undefined);
        }
      },
      resolve: () => this.change(thread, "PATCH", comment, { resolved: true }),
      reopen: () => this.change(thread, "PATCH", comment, { resolved: false }),
    };
    actions[target.dataset.action]();
  };

  Discussion.prototype.change = async function (thread, method, comment, body) {
    const error = thread.querySelector(".comment-thread-error");
    try {
      this.upsert(await this.request(method, this.config.api + "/" + comment.id, body));
      error.hidden = true;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  };

  /* A small form (textarea, submit, cancel) that calls ``send(text)`` and then goes away. */
  Discussion.prototype.miniForm = function (className, label, text, send) {
    const form = element("form", "stack " + className);
    const area = element("textarea");
    area.rows = 3;
    area.required = true;
    area.value = text;
    area.setAttribute("aria-label", label);
    const error = element("p", "error");
    error.hidden = true;
    error.setAttribute("role", "alert");
    const row = element("div", "comment-form-buttons");
    const submit = element("button", "button small", label);
    submit.type = "submit";
    const cancel = element("button", "button small secondary", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => form.remove());
    row.append(submit, cancel);
    form.append(area, error, row);
    this.completeMentions(area);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      try {
        this.upsert(await send(area.value));
        form.remove();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
        submit.disabled = false;
      }
    });
    return form;
  };

  Discussion.prototype.openReply = function (thread, root) {
    let form = thread.querySelector(".comment-reply");
    if (!form) {
      form = this.miniForm("comment-reply", "Reply", "", (text) =>
        this.request("POST", this.config.api, {
          target: this.config.target,
          body: text,
          parent: root.id,
        }),
      );
      thread.appendChild(form);
    }
    form.querySelector("textarea").focus();
  };

  Discussion.prototype.openEdit = function (node, comment) {
    let form = node.querySelector(".comment-edit");
    if (!form) {
      form = this.miniForm("comment-edit", "Save", comment.body, (text) =>
        this.request("PATCH", this.config.api + "/" + comment.id, { body: text }),
      );
      node.appendChild(form);
    }
    form.querySelector("textarea").focus();
  };

  Discussion.prototype.post = async function (form, fields) {
    const error = form.querySelector("[data-comment-error]");
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const body = { target: this.config.target, body: fields.body };
      if (fields.anchor) body.anchor = fields.anchor;
      this.upsert(await this.request("POST", this.config.api, body));
      form.reset();
      this.setAnchor("", "");
      error.hidden = true;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  };

  Discussion.prototype.setAnchor = function (anchor, label) {
    this.anchor = anchor;
    const line = this.root.querySelector("[data-comment-anchor]");
    const link = line.querySelector("[data-comment-anchor-link]");
    link.textContent = label || "#" + anchor;
    link.href = "#" + anchor;
    line.hidden = !anchor;
  };

  function start() {
    const root = document.querySelector("[data-comments]");
    const source = document.getElementById("comments-config");
    if (!root || !source) return;
    const config = JSON.parse(source.textContent);
    const discussion = new Discussion(root, config);
    Labbook.commentOn = function (anchor, label) {
      if (!config.anchors) return;
      discussion.setAnchor(anchor, label);
      discussion.form.elements.body.focus();
    };
    if (config.anchors) addAnchorButtons();
    discussion.load();
    if (!Labbook.live) return;
    Labbook.live(
      { comments: [config.target] },
      {
        message(msg) {
          if (msg.type === "comment.changed" && msg.target === config.target) {
            discussion.upsert(msg.comment);
          }
        },
        connected(isReconnect) {
          if (isReconnect) discussion.load(); // catch up on what was missed offline
        },
      },
    );
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
