// MLflow UI links on Labbook: `<tracking uri>/#/experiments/2/runs/9`, what the mlflow client
// prints after a run. What follows the `#` never reaches the server, so this page sends the
// browser to the same route without it (`/experiments/2/runs/9`, the form newer MLflow UIs
// use), which the server redirects to the run or project page (workspace/mlflow_links.py).
// Only MLflow's own routes, and only on this site: nothing else in a hash moves the page.
(function () {
  "use strict";
  var ROUTE = /^#(\/(?:experiments|runs|compare-runs|metric)(?:[/?][^#]*)?)$/;

  function follow() {
    var match = ROUTE.exec(window.location.hash);
    if (!match) {
      return;
    }
    var target = new URL(match[1], window.location.origin);
    if (target.origin !== window.location.origin) {
      return;
    }
    // `#/metric/?runs=...`: the server's route has no trailing slash (a team's page would).
    var path = target.pathname.length > 1 ? target.pathname.replace(/\/$/, "") : target.pathname;
    window.location.replace(path + target.search);
  }

  follow();
  // A link pasted into a tab already showing this page changes only the hash: no new load.
  window.addEventListener("hashchange", follow);
})();
