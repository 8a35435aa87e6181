"""ASGI entry point: HTTP through Django, websockets through Channels."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reports_app.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from reports_app import log_redaction  # noqa: E402
from reports_app.body_limit import BodyLimit  # noqa: E402
from reports_app.consumers import LiveConsumer, ShareConsumer  # noqa: E402
from reports_app.socket_origin import SameOriginValidator  # noqa: E402

log_redaction.install("uvicorn.access", "uvicorn.error")  # uvicorn's own handlers

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
    path("ws/share/<str:token>/", ShareConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(django_asgi_app),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far lives as long as the process: moving it out of the
# collector's sight keeps full collections cheap while large batches allocate.
gc.freeze()
