"""The plotly.js that pages load: the vendored strict bundle, of the server's plotly major."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.staticfiles import finders
from plotly.offline import get_plotlyjs_version

from kernel.charts import PLOTLY_JS


def test_the_vendored_bundle_is_plotly_js_strict_of_the_servers_major_version():
    found = finders.find(PLOTLY_JS)
    assert found, PLOTLY_JS
    head = Path(found).read_text(encoding="utf-8")[:300]
    version = re.search(r"plotly\.js \(strict - minified\) v(\d+)\.\d+\.\d+", head)
    assert version, head
    # The server builds figures with the Python package for its own plotly.js (major 4 for
    # plotly 7): a bundle of another major may not draw them.
    assert version.group(1) == get_plotlyjs_version().split(".")[0]
    assert (Path(found).parent / "LICENSE.txt").read_text().startswith("MIT License")
