"""The session cookie in production: sent only over HTTPS, out of reach of scripts, and not
sent along with other sites' cross-site posts."""

from app import create_app
from app.settings import Settings
from tests.review.test_review_pages import CSRF


def _login_cookie(app, user, origin: str) -> str:
    """The Set-Cookie header of a real login through the form at `origin`."""
    client = app.test_client()
    page = client.get("/login", base_url=origin)
    token = CSRF.search(page.text).group(1)
    r = client.post(
        "/login",
        data={"name": user["name"], "password": user["password"], "csrf_token": token},
        base_url=origin,
        # Over HTTPS the CSRF check also wants the form to come from this site.
        headers={"Referer": f"{origin}/login"},
    )
    assert r.status_code == 303, r.text
    cookies = [c for c in r.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert len(cookies) == 1, r.headers
    return cookies[0]


def _flags(cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in cookie.split(";")[1:]]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts)}


def test_production_session_cookie_is_secure_httponly_and_samesite_lax(make):
    user = make.user("reviewer")
    app = create_app(Settings(loupe_env="production", secret_key="a-long-random-production-key"))
    assert app.config["SECRET_KEY"] == "a-long-random-production-key"
    flags = _flags(_login_cookie(app, user, "https://loupe.example.org"))
    assert "secure" in flags
    assert "httponly" in flags
    assert flags["samesite"] == "Lax"


def test_outside_production_the_cookie_works_over_plain_http(app, make):
    # The demo and development servers have no TLS: a Secure cookie would never come back.
    flags = _flags(_login_cookie(app, make.user("reviewer"), "http://localhost"))
    assert "secure" not in flags
    assert "httponly" in flags and flags["samesite"] == "Lax"
