import argparse

from anime_pipeline.studio.cli import add_parser, run
from anime_pipeline.studio.security import TOKEN_ENV


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["studio", *argv])


def test_defaults_are_loopback_next_to_the_dagster_ui():
    args = _parse()
    assert (args.host, args.port) == ("127.0.0.1", 3100)
    assert _parse("--host", "::1", "--port", "0").port == 0


def test_run_refuses_an_exposed_studio_without_a_token(settings, monkeypatch, capsys):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert run(_parse("--host", "192.168.1.20"), settings) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to listen on 192.168.1.20") and TOKEN_ENV in err


def test_a_short_token_is_refused_without_being_echoed(settings, monkeypatch, capsys):
    monkeypatch.setenv(TOKEN_ENV, "tiny-tok")
    assert run(_parse(), settings) == 2
    err = capsys.readouterr().err
    assert "too short" in err and "tiny-tok" not in err
