/* Labbook live updates: one websocket to /ws/live/, reconnecting with backoff.
 *
 *   const socket = Labbook.live({runs: [7], projects: ["acme/mnist"]}, {
 *     message(msg) { ... },          // every server message ("run.points", "run.status", ...)
 *     connected(isReconnect) { ... }, // after each (re)subscription: catch up here
 *     state(name) { ... },            // "connecting" | "live" | "offline" | "logged-out" | "gone"
 *   }, path);                          // default "/ws/live/"; share links use "/ws/share/<token>/"
 *
 * The protocol is documented in reports_app/consumers.py and reports_app/live.py.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});
  const CLOSE_UNAUTHENTICATED = 4401;
  const CLOSE_NOT_FOUND = 4404; // a share link that expired or was revoked
  const BACKOFF_MS = [500, 1000, 2000, 5000, 10000, 20000, 30000];

  Labbook.live = function (subscription, handlers, path) {
    let attempt = 0;
    let everConnected = false;
    let socket = null;
    let stopped = false;
    const on = Object.assign({ message() {}, connected() {}, state() {} }, handlers);

    function url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + window.location.host + (path || "/ws/live/");
    }

    function connect() {
      on.state("connecting");
      socket = new WebSocket(url());
      socket.addEventListener("open", function () {
        socket.send(JSON.stringify({ subscribe: subscription }));
      });
      socket.addEventListener("message", function (event) {
        const msg = JSON.parse(event.data);
        if (msg.type === "subscribed") {
          attempt = 0;
          on.state("live");
          on.connected(everConnected);
          everConnected = true;
          return;
        }
        on.message(msg);
      });
      socket.addEventListener("close", function (event) {
        if (stopped) return;
        if (event.code === CLOSE_UNAUTHENTICATED) {
          on.state("logged-out");
          return;
        }
        if (event.code === CLOSE_NOT_FOUND) {
          on.state("gone");
          return;
        }
        on.state("offline");
        const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
        attempt += 1;
        window.setTimeout(connect, base / 2 + Math.random() * base); // jitter: no thundering herd
      });
    }

    connect();
    return {
      close() {
        stopped = true;
        if (socket) socket.close();
      },
      // For tests and debugging: drop the connection as a network failure would.
      drop() {
        if (socket) socket.close(4000);
      },
    };
  };

  /* A small status pill ("Live", "Reconnecting…") in an element with data-live-state. */
  Labbook.showLiveState = function (element) {
    const labels = {
      connecting: "Connecting…",
      live: "Live",
      offline: "Reconnecting…",
      "logged-out": "Logged out: reload to sign in",
      gone: "This link no longer works",
    };
    return function (name) {
      if (!element) return;
      element.dataset.liveState = name;
      element.textContent = labels[name] || name;
    };
  };

  Labbook.formatValue = function (value) {
    if (typeof value !== "number") return String(value); // "NaN", "Infinity"
    return Number.isInteger(value) ? String(value) : String(parseFloat(value.toPrecision(4)));
  };

  /* Status badges ([data-status-run]) follow status changes. */
  Labbook.updateStatus = function (runId, status) {
    document.querySelectorAll('[data-status-run="' + runId + '"]').forEach((badge) => {
      badge.className = "badge badge-" + status;
      badge.textContent = status;
    });
  };

  /* Re-read the runs a page shows (statuses, summaries) from the runs API at `url`: what
   * changed between the page's render and its socket's subscription (or while the socket
   * was down) is in no message the socket will send. */
  Labbook.refreshRuns = async function (url, ids) {
    if (!ids.length) return;
    const query = new URLSearchParams({ ids: ids.join(","), page_size: String(ids.length) });
    const response = await fetch(url + "?" + query.toString(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) return; // the socket's messages still come; the next subscribe retries
    const body = await response.json();
    body.results.forEach((run) => {
      Labbook.updateStatus(run.id, run.status);
      Object.entries(run.summary || {}).forEach(([key, value]) => {
        Labbook.updateSummary(run.id, key, value);
      });
    });
  };

  /* Summary cells ([data-summary-run][data-summary-key]) follow the latest value. */
  Labbook.updateSummary = function (runId, key, value) {
    const selector =
      '[data-summary-run="' + runId + '"][data-summary-key="' + CSS.escape(key) + '"]';
    document.querySelectorAll(selector).forEach((cell) => {
      cell.textContent = Labbook.formatValue(value);
    });
  };
})();
