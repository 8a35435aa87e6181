"""Security headers: a CSP with no inline script, no framing but of embeddable share links,
nosniff, referrer and opener policies, and HTTPS settings that pass ``check --deploy``."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.test import Client

from reports_app import selectors
from reports_app import services as report_services
from reports_app.models import ShareLink
from tests.conftest import World
from tests.sdk.server import ROOT, LabbookServer
from tests.security import site
from tests.security.site import Site
from tracking import selectors as tracking_selectors

TEMPLATES = ROOT / "templates"


@pytest.fixture
def pages(world: World, django_capture_on_commit_callbacks) -> Site:
    return site.build(world, django_capture_on_commit_callbacks)


def _get(client: Client, url: str, **extra):
    response = client.get(url, **extra)
    assert response.status_code == 200, (url, response.status_code)
    return response


def _every_page(client: Client, world: World, pages: Site):
    """(url, response) of every page: the public ones anonymous, the others as the owner."""
    anonymous = [(url, _get(Client(), url)) for url in pages.public_pages]
    client.force_login(world.owner.user)
    return anonymous + [(url, _get(client, url)) for url in pages.member_pages]


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    header = response["Content-Security-Policy"]
    parts = [part.split() for part in header.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


# --- Content-Security-Policy --------------------------------------------------------------


def test_it_sends_a_strict_policy_and_the_other_headers_on_every_page(client, world, pages):
    for url, response in _every_page(client, world, pages):
        csp = policy(response)
        assert csp["script-src"] == ["'self'"], url
        assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"], url
        assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"], url
        assert csp["frame-ancestors"] == ["'none'"], url
        assert csp["connect-src"] == ["'self'", "ws://testserver"], url
        assert csp["style-src"] == ["'self'", "'unsafe-inline'"], url  # plotly.js styles
        assert response["X-Frame-Options"] == "DENY", url
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["Cross-Origin-Opener-Policy"] == "same-origin", url
        expected_referrer = "no-referrer" if url.startswith("/s/") else "same-origin"
        assert response["Referrer-Policy"] == expected_referrer, url


def test_no_page_holds_an_inline_script_an_event_handler_or_a_javascript_url(client, world, pages):
    for url, response in _every_page(client, world, pages):
        found = site.parse(response.content.decode())
        inline = [
            script
            for script in found.scripts
            if not script.get("src") and script.get("type") != "application/json"
        ]
        assert not inline, (url, inline)
        sources = [script["src"] for script in found.scripts if script.get("src")]
        assert all(source.startswith("/") for source in sources), (url, sources)  # ours
        assert not found.handlers, (url, found.handlers)
        assert not found.script_urls, (url, found.script_urls)


def test_no_template_holds_an_inline_script_or_an_event_handler():
    # The export is a downloaded file that must open offline, from disk, with plotly.js
    # inline; the emails are never pages. Every other template is served under the CSP.
    skipped = {"reports_app/export.html"}
    checked = 0
    for path in TEMPLATES.rglob("*.html"):
        name = path.relative_to(TEMPLATES).as_posix()
        if name in skipped or "/email" in f"/{name}":
            continue
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), name
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), name
        assert "javascript:" not in text.lower(), name
        checked += 1
    assert checked > 30  # the scan found the templates


def test_the_websocket_source_follows_the_request_scheme(client, world):
    client.force_login(world.owner.user)
    assert "wss://testserver" in policy(client.get("/", secure=True))["connect-src"]


def test_a_request_for_an_unknown_host_gets_its_400_with_the_policy(client):
    response = client.get("/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert policy(response)["connect-src"] == ["'self'"]  # no websocket of a host we refuse


def test_the_api_docs_load_their_start_up_script_from_a_file(client):
    found = site.parse(_get(client, "/api/docs/").content.decode())
    sources = [script["src"] for script in found.scripts]
    assert any("script=" in source for source in sources), sources
    start_up = next(source for source in sources if "script=" in source)
    script = _get(client, start_up.replace("&amp;", "&"))
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


# --- Charts draw without eval ---------------------------------------------------------------


def _figures(client: Client, report_id: int) -> list[dict]:
    page = _get(client, f"/reports/{report_id}/").content.decode()
    found = re.search(r'<script id="report-config" type="application/json">(.*?)</script>', page)
    return [item["figure"] for item in json.loads(found.group(1))["figures"]]


def test_report_charts_draw_in_svg_even_when_frozen_in_webgl(client, world, pages):
    # plotly's WebGL traces compile code at run time, which script-src 'self' refuses.
    project = tracking_selectors.project_get_for_user(world.owner.user, "acme/mnist")
    body = f"```chart\nruns: [{pages.run_id}]\nmetrics: [loss]\nlive: false\n```"
    report = report_services.report_create(
        user=world.owner.user, project=project, title="Frozen", body=body
    )
    revision = report.revisions.get()
    assert revision.frozen["0"]["data"][0]["type"] == "scatter"
    # As a revision saved while charts still drew in WebGL holds it:
    revision.frozen["0"]["data"][0]["type"] = "scattergl"
    revision.save(update_fields=["frozen"])
    client.force_login(world.owner.user)
    for report_id in (report.pk, pages.report_id):  # frozen, and live
        traces = [trace for figure in _figures(client, report_id) for trace in figure["data"]]
        assert traces and {trace["type"] for trace in traces} == {"scatter"}


# --- Framing of share links ---------------------------------------------------------------


def _link(world: World, pages: Site, **options: bool) -> str:
    report = selectors.report_get_for_user(world.owner.user, pages.report_id)
    _, token = report_services.share_link_create(report=report, user=world.owner.user, **options)
    return token


def test_a_share_link_may_not_be_framed_unless_marked_embeddable(world, pages):
    response = _get(Client(), f"/s/{pages.share_token}")
    assert policy(response)["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"


def test_an_embeddable_share_link_may_be_framed_by_any_site(world, pages):
    response = _get(Client(), f"/s/{_link(world, pages, embeddable=True)}")
    csp = policy(response)
    assert csp["frame-ancestors"] == ["*"]
    assert csp["script-src"] == ["'self'"]  # the rest of the policy stays
    assert not response.has_header("X-Frame-Options")


def test_the_sites_that_may_frame_a_share_link_come_from_the_setting(world, pages, settings):
    settings.SHARE_FRAME_ANCESTORS = ["https://blog.example.org", "https://wiki.example.org"]
    response = _get(Client(), f"/s/{_link(world, pages, embeddable=True)}")
    expected = ["https://blog.example.org", "https://wiki.example.org"]
    assert policy(response)["frame-ancestors"] == expected


def test_the_other_pages_stay_unframeable_next_to_an_embeddable_link(client, world, pages):
    _link(world, pages, embeddable=True)
    client.force_login(world.owner.user)
    response = _get(client, f"/reports/{pages.report_id}/")
    assert policy(response)["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"


def test_the_share_page_creates_an_embeddable_link_and_shows_its_embed_code(client, world, pages):
    client.force_login(world.owner.user)
    url = f"/reports/{pages.report_id}/share"
    assert 'name="embeddable"' in _get(client, url).content.decode()
    response = client.post(url, {"embeddable": "on"}, follow=True)
    page = response.content.decode()
    link = ShareLink.objects.get(report_id=pages.report_id, embeddable=True)
    assert response.status_code == 200
    assert f"&lt;iframe src=&quot;http://testserver/s/{link.prefix}" in page
    assert ">embeddable<" in page
    client.post(url, {})
    assert ShareLink.objects.filter(report_id=pages.report_id, embeddable=False).count() == 2


def test_the_api_creates_an_embeddable_link(world, pages):
    url = f"/api/v1/reports/{pages.report_id}/share-links"
    created = world.owner.client().post(url, {"embeddable": True}, format="json")
    assert created.status_code == 201 and created.json()["embeddable"] is True
    listed = world.owner.client().get(url).json()
    assert sorted(link["embeddable"] for link in listed) == [False, True]


@pytest.mark.parametrize("value", ["yes", 1, None, [True]])
def test_the_api_refuses_an_embeddable_that_is_not_a_boolean(world, pages, value):
    url = f"/api/v1/reports/{pages.report_id}/share-links"
    response = world.owner.client().post(url, {"embeddable": value}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "embeddable"
    assert ShareLink.objects.filter(report_id=pages.report_id).count() == 1


# --- HTTPS settings, read fresh in a subprocess ---------------------------------------------


def _env(home: Path, **values: str) -> dict[str, str]:
    drop = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env.update(LABBOOK_HOME=str(home), **values)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "manage.py", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


READ_SETTINGS = """
import json
from django.conf import settings
names = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
         "SECURE_HSTS_SECONDS", "CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER"]
print(json.dumps({name: getattr(settings, name, None) for name in names}))
"""


def _settings(home: Path, **values: str) -> dict:
    done = _manage(_env(home, **values), "shell", "--no-imports", "-c", READ_SETTINGS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _production(home: Path, **values: str) -> dict[str, str]:
    return _env(
        home,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        BASE_URL="https://labbook.example.org",
        ALLOWED_HOSTS="labbook.example.org",
        **values,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = _production(tmp_path, SECURE_HSTS_INCLUDE_SUBDOMAINS="1", SECURE_HSTS_PRELOAD="1")
    done = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_an_https_base_url_alone_leaves_only_the_two_hsts_opt_ins(tmp_path):
    done = _manage(_production(tmp_path), "check", "--deploy")
    assert done.returncode == 0, done.stderr
    warnings = re.findall(r"\((\S+\.W\d+)\)", done.stdout + done.stderr)
    assert sorted(warnings) == ["security.W005", "security.W021"]


def test_the_embedded_default_serves_plain_http_without_secure_cookies(tmp_path):
    assert _settings(tmp_path) == {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "CSRF_TRUSTED_ORIGINS": ["http://127.0.0.1:8000"],
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_an_https_base_url_turns_on_secure_cookies_the_redirect_and_hsts(tmp_path):
    found = _settings(tmp_path, BASE_URL="https://labbook.example.org")
    assert found["SESSION_COOKIE_SECURE"] and found["CSRF_COOKIE_SECURE"]
    assert found["SECURE_SSL_REDIRECT"] and found["SECURE_HSTS_SECONDS"] == 31_536_000
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://labbook.example.org"]


def test_each_https_setting_can_be_set_on_its_own(tmp_path):
    found = _settings(
        tmp_path,
        BASE_URL="https://labbook.example.org",
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="3600",
        SESSION_COOKIE_SECURE="false",
        CSRF_TRUSTED_ORIGINS="https://a.example.org, https://b.example.org",
        SECURE_PROXY_SSL_HEADER="1",
    )
    assert found["SECURE_SSL_REDIRECT"] is False and found["SECURE_HSTS_SECONDS"] == 3600
    assert found["SESSION_COOKIE_SECURE"] is False and found["CSRF_COOKIE_SECURE"] is True
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://a.example.org", "https://b.example.org"]
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECURE_HSTS_SECONDS", "-1"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("CSRF_COOKIE_SECURE", "si"),
    ],
)
def test_a_bad_https_setting_stops_start_up_naming_it(tmp_path, name, value):
    done = _manage(_env(tmp_path, **{name: value}), "check")
    assert done.returncode != 0
    assert name in done.stderr


# --- A real server behind a TLS-terminating proxy ------------------------------------------


@pytest.mark.subprocess
def test_a_server_behind_a_tls_proxy_redirects_http_and_sends_hsts_and_secure_cookies(tmp_path):
    env = {
        "BASE_URL": "https://labbook.test",
        "ALLOWED_HOSTS": "127.0.0.1,labbook.test",
        "SECURE_PROXY_SSL_HEADER": "1",
    }
    with LabbookServer(tmp_path / "home", env=env) as server:  # /healthz stays plain HTTP
        plain = httpx.get(f"{server.url}/login/", trust_env=False)
        assert plain.status_code == 301
        assert plain.headers["location"] == f"https://127.0.0.1:{server.port}/login/"
        proxied = httpx.get(
            f"{server.url}/login/", headers={"X-Forwarded-Proto": "https"}, trust_env=False
        )
    assert proxied.status_code == 200
    assert proxied.headers["strict-transport-security"] == "max-age=31536000"
    cookie = proxied.headers["set-cookie"]
    assert cookie.startswith("csrftoken=") and "; Secure" in cookie
    assert f"wss://127.0.0.1:{server.port}" in proxied.headers["content-security-policy"]
