/* Run-level panels (scatter, bar, parallel coordinates, importance): draw a figure the
 * server built (reports_app.panels), on report pages, their exports and the compare page.
 * A click on a run's mark opens its page when the server gave the mark a link (never on a
 * share link or an export). The plot's data-runs says how many runs it holds.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});

  Labbook.drawPanel = function (element, figure, runs) {
    const layout = Object.assign({}, figure.layout, { autosize: true });
    window.Plotly.react(element, figure.data, layout, { responsive: true, displaylogo: false });
    element.dataset.runs = String(runs.length);
    if (element.dataset.bound) return;
    element.dataset.bound = "1";
    element.on("plotly_click", (event) => {
      const point = event && event.points && event.points[0];
      const href = point && point.customdata;
      if (typeof href === "string" && href.startsWith("/")) window.location.assign(href);
    });
  };
})();
