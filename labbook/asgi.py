"""ASGI entry point: HTTP through Django, websockets through Channels."""

from __future__ import annotations

import gc
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from labbook import log_redaction  # noqa: E402
from labbook.body_limit import BodyLimit  # noqa: E402
from labbook.socket_origin import SameOriginValidator  # noqa: E402
from reports_app.consumers import LiveConsumer, ShareConsumer  # noqa: E402

log_redaction.install("uvicorn.access", "uvicorn.error")  # uvicorn's own handlers

# Channels' documented routing, which the stubs cannot express: django-stubs' path() takes
# Django views only, and types-channels' URLRouter a pattern type that path() never returns.
websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/share/<str:token>/", ShareConsumer.as_asgi()),  # type: ignore[arg-type]
]

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(django_asgi_app),
        "websocket": SameOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))  # type: ignore[arg-type]
        ),
    }
)

# A thread waiting for the interpreter lock (a /healthz probe, an ingest between two
# queries) gets it back after this long, not Python's 5 ms. With renders busy in other
# threads, a request that waits for the lock a few dozen times (each query, each file)
# answered /healthz at a p99 of 1,003 ms with 5 ms; 134 ms with 0.5 ms and render slots;
# 103 ms with 0.2 ms (tests/benchmarks/worst_input.py). A lone thread never switches.
SWITCH_INTERVAL = 0.0002  # seconds
sys.setswitchinterval(SWITCH_INTERVAL)

# Everything loaded so far lives as long as the process: moving it out of the
# collector's sight keeps full collections cheap while large batches allocate.
gc.freeze()
