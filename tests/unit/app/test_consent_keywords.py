"""Which inbound texts are consent keywords: the whole message, trimmed, in any case; the
lists come from the settings."""

from __future__ import annotations

from conversa.app.consent_keywords import HELP, Keywords
from conversa.app.settings import Settings


def keywords(**environ: str) -> Keywords:
    return Keywords.of(
        Settings.from_environ({f"CONVERSA_{k.upper()}": v for k, v in environ.items()})
    )


def test_the_default_keywords_match_the_whole_trimmed_message_in_any_case() -> None:
    words = keywords()
    for text in ("STOP", " stop\n", "Unsubscribe", "stopall", "QUIT", "optout", "Revoke"):
        assert words.match(text) == ("opted_out", text.strip().upper()), text
    for text in ("start", "YES", " Unstop "):
        assert words.match(text) == ("opted_in", text.strip().upper())
    assert words.match("help") == (HELP, "HELP")
    assert words.match("Info ") == (HELP, "INFO")
    for other in ("please stop", "STOP!", "yes please", "", None, "stop stop"):
        assert words.match(other) is None, other


def test_the_lists_are_configurable_and_replace_the_defaults() -> None:
    words = keywords(opt_out_keywords="ARRET, halt", opt_in_keywords="GO")
    assert words.match("arret") == ("opted_out", "ARRET")
    assert words.match("HALT") == ("opted_out", "HALT")
    assert words.match("stop") is None
    assert words.match("go") == ("opted_in", "GO")
    assert words.replies == {"opted_out": None, "opted_in": None, "help": None}
    replying = keywords(help_reply="Text STOP to stop", opt_out_reply="Bye")
    assert replying.replies["help"] == "Text STOP to stop"
    assert replying.replies["opted_out"] == "Bye"
