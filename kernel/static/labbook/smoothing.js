/* Smoothing of chart lines, shared by the run and compare charts, reports and the editor's
 * preview: an exponential moving average with TensorBoard's debiasing. ``state``
 * ({last, n}) carries over between calls, so points that arrive live continue the line.
 * A missing value (null, undefined: "NaN" and "Infinity" arrive as strings and become
 * null) is a gap, and leaves the average as it was.
 */
(function () {
  "use strict";
  const Labbook = (window.Labbook = window.Labbook || {});

  Labbook.smooth = function (values, weight, state) {
    const carried = state || { last: 0, n: 0 };
    return values.map(function (value) {
      if (value === null || value === undefined) return null;
      carried.last = carried.last * weight + (1 - weight) * value;
      carried.n += 1;
      return carried.last / (1 - Math.pow(weight, carried.n));
    });
  };
})();
