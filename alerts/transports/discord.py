"""Discord webhooks: a line of text plus one embed per alert, with mentions turned off.

``allowed_mentions: {"parse": []}`` makes Discord ignore ``@everyone``,
``@here`` and role or user mentions wherever they appear (a run called
"@everyone" pings nobody). Each alert is an embed: its title links to the run,
red while firing, green once resolved; the one-click links (acknowledge,
silence) are markdown links in its description, above the traceback tail of a
failed run in a code block; run, project, status and key metrics are fields.
An expected run that did not come has no run: its title links to the alert's
page, and the project, schedule and deadline are its fields.

Discord's limits are written once below: at most ``MAX_EMBEDS`` embeds and
``TOTAL_EMBED_CHARS`` characters of text across them, so a grouped message
shows what fits (the tracebacks shrink first) and one last embed counts the
rest. Discord answers 204; 404 (the webhook was deleted) or 401 (its token is
wrong) marks the destination broken. The URL's last segment, the token, is a
secret: shown masked like a Slack URL's key.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from alerts.transports import http
from alerts.transports.base import (
    AlertInfo,
    Delivery,
    Message,
    Transport,
    TransportError,
    alert_page_url,
    missed_run_facts,
)
from alerts.transports.slack import masked_url

CONFIG_KEYS = frozenset({"url"})
BROKEN_STATUSES = frozenset({401, 404})
# Discord's limits for a webhook message.
CONTENT_CHARS = 2000
MAX_EMBEDS = 10
TITLE_CHARS = 256
DESCRIPTION_CHARS = 4096
MAX_FIELDS = 25
FIELD_NAME_CHARS = 256
FIELD_VALUE_CHARS = 1024
TOTAL_EMBED_CHARS = 6000  # titles, descriptions, field names and values of all embeds
# Ours.
TRACEBACK_CHARS = 1500
MIN_TRACEBACK_CHARS = 120  # less room than this: leave the traceback out
ERROR_CHARS = 300
MAX_METRICS = 6
RED, GREEN, BLURPLE = 0xED4245, 0x57F287, 0x5865F2
# AlertInfo.links -> its label in the description, in this order.
LINK_LABELS = {
    "acknowledge": "Acknowledge",
    "silence_1h": "Silence 1 h",
    "silence_1d": "Silence 1 day",
}
FENCE = "```"
MARKDOWN = re.compile(r"([\\*_~`|\[\]()<>#])")


class DiscordTransport(Transport):
    kind = "discord"

    def clean_config(self, config: Any) -> dict[str, Any]:
        config = http.require_keys(config, allowed=CONFIG_KEYS)
        return {"url": http.clean_url(config.get("url"))}

    def public_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Anyone holding the webhook URL can post as it: its token is shown masked."""
        return {**config, "url": masked_url(config.get("url", ""))}

    def with_secrets_kept(self, new: Any, stored: dict[str, Any]) -> Any:
        stored_url = stored.get("url", "")
        if isinstance(new, dict) and new.get("url") in (None, masked_url(stored_url)):
            return {**new, "url": stored_url}
        return new

    def send(self, message: Message, config: dict[str, Any]) -> Delivery:
        body = orjson.dumps(discord_payload(message))
        headers = {"Content-Type": "application/json", "User-Agent": http.user_agent()}
        response = http.post(config["url"], body=body, headers=headers)
        check_broken(response)
        return http.delivery_for(response)


def check_broken(response: http.HttpResponse) -> None:
    if response.status_code in BROKEN_STATUSES:
        raise TransportError(
            f"Discord says the webhook is gone (HTTP {response.status_code}: {response.excerpt()})",
            retryable=False,
            status_code=response.status_code,
            broken=True,
        )


def discord_payload(message: Message) -> dict[str, Any]:
    return {
        "content": cut(message.title, CONTENT_CHARS),
        "embeds": embeds(message),
        "allowed_mentions": {"parse": []},
    }


def embeds(message: Message) -> list[dict[str, Any]]:
    """An embed per alert while they fit Discord's limits, then one counting the rest.

    The alerts shown share the characters equally, and are few enough that
    each share holds at least the alert's title and one-click links; when
    some are left out, the last slot and ``TITLE_CHARS`` stay free for the count.
    """
    if not message.alerts:
        return [test_embed(message)]
    alerts = message.alerts
    slots, room = shown_slots(alerts)
    result = [alert_embed(alert, budget=room // slots) for alert in alerts[:slots]]
    more = len(alerts) - len(result)
    if more:
        result.append(more_embed(message, more))
    return result


def shown_slots(alerts: list[AlertInfo]) -> tuple[int, int]:
    """How many alerts get an embed, and the characters they share."""
    slots = min(len(alerts), MAX_EMBEDS)
    while True:
        if slots < len(alerts):
            slots = min(slots, MAX_EMBEDS - 1)
        room = TOTAL_EMBED_CHARS - (TITLE_CHARS if slots < len(alerts) else 0)
        needed = max(len(title_for(alert)) + len(links_line(alert)) for alert in alerts[:slots])
        if slots == 1 or needed * slots <= room:
            return slots, room
        slots -= 1


def alert_embed(alert: AlertInfo, *, budget: int) -> dict[str, Any]:
    """The alert in at most ``budget`` characters (a title always fits a share).

    What matters most comes first: the title, the one-click links (whole or
    not at all), the fields that fit, then the traceback tail in what is left.
    """
    run = alert.run
    resolved = alert.state == "resolved"
    title = title_for(alert)
    room = budget - len(title)
    links = links_line(alert)
    links = links if len(links) <= min(room, DESCRIPTION_CHARS) else ""
    room -= len(links)
    shown = []
    for field in fields(alert):
        size = len(field["name"]) + len(field["value"])
        if size <= room:
            shown.append(field)
            room -= size
    block = traceback_block(alert, min(room, DESCRIPTION_CHARS - len(links)) - 1)
    embed: dict[str, Any] = {
        "title": title,
        "description": "\n".join(part for part in (links, block) if part),
        "color": GREEN if resolved else RED,
        "fields": shown,
        "timestamp": alert.resolved_at if resolved and alert.resolved_at else alert.fired_at,
    }
    if run is None:  # an expected run that did not come: the title links to the alert's page
        embed["url"] = alert_page_url(alert)
    elif run.url:
        embed["url"] = run.url
    if alert.chart_url:
        embed["image"] = {"url": alert.chart_url}
    return embed


def title_for(alert: AlertInfo) -> str:
    state = "RESOLVED" if alert.state == "resolved" else "FIRING"
    return cut(f"{state} {escape(alert.rule)}: {escape(alert.summary)}", TITLE_CHARS)


def fields(alert: AlertInfo) -> list[dict[str, Any]]:
    """The run's facts, or for an expected run that did not come the schedule it missed."""
    run = alert.run
    if run is None:
        rows = missed_run_facts(alert)
    else:
        rows = [("Run", run.name), ("Project", run.project), ("Status", run.status)]
        if run.error:
            rows.append(("Error", cut(run.error, ERROR_CHARS)))
        metrics = list(run.metrics.items())[:MAX_METRICS]
        rows += [(str(key), format_value(value)) for key, value in metrics]
    return [
        {
            "name": cut(escape(name), FIELD_NAME_CHARS),
            "value": cut(escape(value), FIELD_VALUE_CHARS) or "—",
            "inline": True,
        }
        for name, value in rows[:MAX_FIELDS]
    ]


def links_line(alert: AlertInfo) -> str:
    """The one-click links as markdown links, for the description."""
    return " · ".join(
        f"[{label}]({alert.links[name]})"
        for name, label in LINK_LABELS.items()
        if alert.links.get(name)
    )


def traceback_block(alert: AlertInfo, room: int) -> str:
    """A failed run's traceback tail in a code block of at most ``room`` characters."""
    run = alert.run
    if run is None or not (run.failed and run.traceback_tail):
        return ""
    tail = code(run.traceback_tail)[-TRACEBACK_CHARS:]
    fits = room - len(f"{FENCE}\n\n{FENCE}")
    if fits < min(MIN_TRACEBACK_CHARS, len(tail)):
        return ""
    return f"{FENCE}\n{tail[-fits:]}\n{FENCE}"


def more_embed(message: Message, more: int) -> dict[str, Any]:
    return {
        "title": cut(
            f"…and {more} more alert{'s' if more != 1 else ''} not shown here", TITLE_CHARS
        ),
        "url": message.url,
        "color": RED if message.event != "alert.resolved" else GREEN,
    }


def test_embed(message: Message) -> dict[str, Any]:
    return {
        "title": "Test notification from Labbook",
        "description": cut(
            f"This is a test notification from Labbook for **{escape(message.project)}**."
            " If you can read it, this destination works.",
            DESCRIPTION_CHARS,
        ),
        "url": message.url,
        "color": BLURPLE,
    }


def embed_chars(embed: dict[str, Any]) -> int:
    """What Discord counts against ``TOTAL_EMBED_CHARS``."""
    counted = len(embed.get("title", "")) + len(embed.get("description", ""))
    counted += sum(len(field["name"]) + len(field["value"]) for field in embed.get("fields", []))
    return counted + len(embed.get("footer", {}).get("text", ""))


def escape(text: str) -> str:
    """Discord markdown shown as typed: a run name cannot make links, bold or code."""
    return MARKDOWN.sub(r"\\\1", text)


def code(text: str) -> str:
    """Text for a code block: no two backticks in a row, so it can never close the block."""
    return text.replace("`", "`\u200b").rstrip("\u200b")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
