import os

import pytest

from anime_pipeline.studio.security import (
    TOKEN_ENV,
    Guard,
    PathRefused,
    Secret,
    StudioError,
    check_bind,
    is_loopback,
    resolve_under,
    token_from_env,
)

TOKEN = "s3cret-token-value-0123456789"


def test_the_token_never_shows_itself():
    secret = Secret(TOKEN)
    assert TOKEN not in repr(secret) and TOKEN not in str(secret) and TOKEN not in f"{secret!r} {[secret]}"
    assert secret.matches(TOKEN) and not secret.matches(TOKEN[:-1])
    with pytest.raises(StudioError, match="too short") as caught:
        Secret("short")
    assert "short" not in str(caught.value).replace("too short", "")


def test_token_comes_from_the_environment_only_when_set():
    assert token_from_env({}) is None and token_from_env({TOKEN_ENV: "  "}) is None
    assert token_from_env({TOKEN_ENV: TOKEN}).matches(TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "studio.lan", "localhost.evil.example"])
def test_any_other_host_needs_the_token(host):
    assert not is_loopback(host)
    with pytest.raises(StudioError, match=f"refusing to listen on .*{TOKEN_ENV}"):
        check_bind(host, None)
    check_bind(host, Secret(TOKEN))


def test_csrf_and_sign_in_marks_are_per_session_and_per_process():
    guard = Guard(Secret(TOKEN), loopback_only=True)
    one, two = guard.new_session(), guard.new_session()
    assert guard.csrf_ok(one, guard.csrf_token(one))
    assert not guard.csrf_ok(two, guard.csrf_token(one)) and not guard.csrf_ok(one, None) and not guard.csrf_ok(None, "x")
    assert guard.session_signed_in(one, guard.signed_in_mark(one))
    assert not guard.session_signed_in(two, guard.signed_in_mark(one))
    assert not guard.session_signed_in(one, guard.csrf_token(one))  # a CSRF token is not a sign-in
    restarted = Guard(Secret(TOKEN), loopback_only=True)
    assert not restarted.csrf_ok(one, guard.csrf_token(one))
    assert TOKEN not in guard.csrf_token(one) + guard.signed_in_mark(one)


def test_without_a_token_every_session_may_write_but_bearer_never_matches():
    guard = Guard(None, loopback_only=True)
    assert guard.session_signed_in("any", None)
    assert not guard.bearer_ok(f"Bearer {TOKEN}")


def test_bearer_header():
    guard = Guard(Secret(TOKEN), loopback_only=False)
    assert guard.bearer_ok(f"Bearer {TOKEN}") and guard.bearer_ok(f"bearer  {TOKEN} ")
    assert not guard.bearer_ok(f"Basic {TOKEN}") and not guard.bearer_ok("Bearer nope") and not guard.bearer_ok(None)


@pytest.mark.parametrize("origin,fetch_site,referer,same", [
    ("http://127.0.0.1:3100", None, None, True),
    ("http://127.0.0.1:3000", None, None, False),  # the Dagster UI's port is another origin
    ("http://evil.example", "same-origin", None, False),  # an Origin header decides
    ("null", None, None, False),
    (None, "same-origin", None, True),
    (None, "cross-site", "http://127.0.0.1:3100/x", False),
    (None, None, "http://127.0.0.1:3100/characters/a/b", True),
    (None, None, "http://127.0.0.1:3100.evil.example/", False),
    (None, None, None, False),
])
def test_same_origin(origin, fetch_site, referer, same):
    guard = Guard(None, loopback_only=True)
    assert guard.same_origin("127.0.0.1:3100", "http", origin, fetch_site, referer) is same


def test_host_check_only_when_listening_on_loopback():
    loop = Guard(None, loopback_only=True)
    assert loop.host_allowed("127.0.0.1:3100") and loop.host_allowed("localhost:3100") and loop.host_allowed("[::1]:3100")
    assert not loop.host_allowed("evil.example:3100") and not loop.host_allowed("")
    assert Guard(Secret(TOKEN), loopback_only=False).host_allowed("studio.lan:3100")


def test_resolve_under_serves_plain_files_inside_the_root(tmp_path):
    root = tmp_path / "storage"
    (root / "show").mkdir(parents=True)
    (root / "show" / "a.png").write_bytes(b"png")
    assert resolve_under(root, "show/a.png") == (root / "show" / "a.png").resolve()


@pytest.mark.parametrize("relative", ["../secret.png", "show/../../secret.png", "/etc/passwd", "show//a.png",
                                      "show/./a.png", "show\\..\\..\\secret.png", "show/.a.tmp.png", "show/a.py",
                                      "show/a.png\x00.png", "", "show/out/secret.png", "show/link.png",
                                      "show/loop.png"])
def test_resolve_under_refuses_every_escape(tmp_path, relative):
    root = tmp_path / "storage"
    (root / "show").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"secret")
    (root / "show" / "a.png").write_bytes(b"png")
    (root / "show" / ".a.tmp.png").write_bytes(b"half-written")
    (root / "show" / "a.py").write_text("print()")
    os.symlink(tmp_path, root / "show" / "out")
    os.symlink(tmp_path / "secret.png", root / "show" / "link.png")
    os.symlink(root / "show" / "loop.png", root / "show" / "loop.png")
    with pytest.raises(PathRefused):
        resolve_under(root, relative)
