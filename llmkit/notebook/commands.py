"""The ``%llm`` line commands: one small function each, picked by the line's first word.

Each takes the magics object (its settings, chats, shell) and the rest of the line's words, prints
what it did, and returns a DataFrame where there is a table to show (``log``, ``summary``, ``chats``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.utils.text import dedent

import llmkit
from llmkit import settings
from llmkit.notebook import aliases as alias_store
from llmkit.notebook import tables
from llmkit.notebook.catalog import check_model, provider_models
from llmkit.providers.registry import describe_providers

__all__ = ["HELP", "run"]

HELP = """\
%llm default [MODEL]     the model %%llm uses when the line names none; saved in the settings file (--clear)
%llm models              registered providers, their models, and aliases
%llm alias NAME MODEL    let NAME stand for MODEL ("provider/model") in %%llm and the widgets; saved
%llm alias --delete NAME forget an alias;  %llm alias  lists them
%llm chats               the conversations kept with --chat, newest first
%llm chat NAME --show    a conversation's transcript;  %llm chat NAME --reset  starts it over
%llm fix [MODEL]         ask MODEL (default: %llm default) why the last cell failed, and for a fix
%llm log [N] [--all]     this session's last N calls (default 10) as a DataFrame; --all: every process's
%llm summary [--all]     per model: calls, error rate, latency, time to first token, tokens/s, tokens, cost
%llm cache MODE          the response cache: use, replay, refresh or off; %llm cache stats | clear [MODEL]
%llm help                this help, and the options of %%llm
"""


def run(magics: Any, line: str) -> Any:
    words = line.split()
    command, rest = (words[0], words[1:]) if words else ("help", [])
    handler = _COMMANDS.get(command)
    if handler is None:
        raise UsageError(f"unknown %llm command {line.strip()!r}; use one of: {', '.join(_COMMANDS)}")
    return handler(magics, rest)


def _default(magics: Any, rest: list[str]) -> None:
    config = magics.settings
    if not rest:
        model = config.default_model
        print(f"default model: {model} ({config.origin('default_model')})" if model else _NO_DEFAULT)
        return
    if rest == ["--clear"]:
        settings.update(default_model=None)
        config.default_model = None
        print(f"default model cleared from {settings.path()}")
        return
    if len(rest) != 1 or rest[0].startswith("-"):
        raise UsageError("usage: %llm default MODEL, %llm default (show it), or %llm default --clear")
    check_model(rest[0])  # an unknown provider or alias fails now, not at the next cell
    settings.update(default_model=rest[0])
    config.default_model = rest[0]
    print(f"default model: {rest[0]} (saved in {settings.path()})")


_NO_DEFAULT = "no default model yet; set one with %llm default provider/model"


def _models(magics: Any, rest: list[str]) -> None:
    _no_more(rest, "models")
    lines = []
    origins = dict(describe_providers())
    for provider, (chat, image) in provider_models().items():
        names = ", ".join(chat) or f"any model: {provider}/<model>"
        if image:
            names += "; images: " + ", ".join(image)
        origin = origins.get(provider, "built-in")
        lines.append(f"{provider:<16} {names}" + ("" if origin == "built-in" else f"  [{origin}]"))
    known = alias_store.aliases()
    if known:
        lines.append("aliases:")
        lines.extend(f"  {name} -> {model}" for name, model in known.items())
    if magics.settings.default_model:
        lines.append(f"default: {magics.settings.default_model}")
    print("\n".join(lines))


def _alias(magics: Any, rest: list[str]) -> None:
    if not rest:
        known = alias_store.aliases()
        print("\n".join(f"{name} -> {model}" for name, model in known.items()) or "no aliases yet")
        return
    if rest[0] == "--delete" and len(rest) == 2:
        name = rest[1]
        if not alias_store.delete_alias(name, save=True):
            raise UsageError(f"no alias {name!r}; %llm alias lists them")
        magics.settings.aliases = alias_store.aliases()
        print(f"alias {name} deleted")
        return
    if len(rest) != 2:
        raise UsageError(
            "usage: %llm alias NAME provider/model, e.g. %llm alias fast demo/echo; %llm alias --delete NAME"
        )
    name, model = rest
    if "/" in model:
        llmkit.get_llm_provider(model)  # an unknown provider fails now, not at the alias's first use
    alias_store.set_alias(name, model, save=True)
    magics.settings.aliases = alias_store.aliases()
    print(f"{name} -> {model}")


def _chats(magics: Any, rest: list[str]) -> Any:
    _no_more(rest, "chats")
    return magics.chats.listing()


def _chat(magics: Any, rest: list[str]) -> None:
    if len(rest) != 2 or rest[1] not in ("--show", "--reset"):
        raise UsageError("usage: %llm chat NAME --show, or %llm chat NAME --reset")
    name, action = rest
    if action == "--reset":
        models = magics.chats.reset(name)
        print(f"chat {name} starts over" + (f" for {', '.join(models)}" if models else " (it had no turns yet)"))
        return
    transcript = magics.chats.transcript(name)
    if not transcript:
        print(f"chat {name} has no turns yet; %llm chats lists the chats")
        return
    from IPython.display import Markdown, display

    display(Markdown(transcript))


def _fix(magics: Any, rest: list[str]) -> None:
    """``%llm fix [MODEL] [more words]``: ``%%llm --explain`` with the words as the question."""
    model = (
        [rest[0]]
        if rest and not rest[0].startswith("-") and ("/" in rest[0] or rest[0] in alias_store.aliases())
        else []
    )
    question = " ".join(rest[len(model) :])
    magics.llm(" ".join([*model, "--explain"]), question)


def _log(magics: Any, rest: list[str]) -> Any:
    every = "--all" in rest
    words = [word for word in rest if word != "--all"]
    if len(words) > 1:
        raise UsageError("usage: %llm log [N] [--all]")
    n = _count(words[0]) if words else 10
    return _from_log(lambda: tables.recent_calls(n, everyone=every))


def _summary(magics: Any, rest: list[str]) -> Any:
    if rest not in ([], ["--all"]):
        raise UsageError("usage: %llm summary [--all]")
    session = {} if rest else {"session_id": llmkit.calls.session_id}
    return _from_log(lambda: llmkit.calls.summary(**session))


_CACHE_USAGE = "usage: %llm cache use|replay|refresh|off, %llm cache stats, or %llm cache clear [provider/model]"


def _cache(magics: Any, rest: list[str]) -> None:
    try:
        print(_cache_command(rest))
    except ValueError as exc:  # a bad model for clear, or LLMKIT_CACHE holding no mode
        raise UsageError(str(exc)) from None


def _cache_command(rest: list[str]) -> str:
    """What ``%llm cache ...`` did, as a line to print; the cache itself lives in llmkit.cache."""
    word = rest[0] if rest else "stats"
    if word in llmkit.cache.MODES and len(rest) == 1:
        llmkit.configure_cache(word)
        return f"response cache: {word}"
    if word == "clear" and len(rest) <= 2:
        removed = llmkit.cache.clear(model=rest[1] if len(rest) == 2 else None)
        return f"removed {removed} cached answer(s)"
    if word == "stats" and len(rest) <= 1:
        return llmkit.cache.stats_text().rstrip("\n")
    raise UsageError(f"unknown %llm cache command {' '.join(rest)!r}; {_CACHE_USAGE}")


def _help(magics: Any, rest: list[str]) -> None:
    _no_more(rest, "help")
    print(HELP + "\n" + dedent(magics.llm.__doc__ or ""))


def _no_more(rest: list[str], command: str) -> None:
    if rest:
        raise UsageError(f"%llm {command} takes nothing more, got {' '.join(rest)!r}")


def _count(word: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise UsageError(f"%llm log takes how many calls to show, e.g. %llm log 20; got {word!r}")
    return int(word)


def _from_log(read: Callable[[], Any]) -> Any:
    """A DataFrame read from the call log; UsageError when the log is off."""
    if tables.log_is_off():
        raise UsageError(
            "the call log is off (LLMKIT_LOG=off, or `llmkit logs off`); turn it on with `llmkit logs on`"
            " or llmkit.configure_log('sqlite')"
        )
    return read()


_COMMANDS: dict[str, Callable[[Any, list[str]], Any]] = {
    "default": _default,
    "models": _models,
    "alias": _alias,
    "chats": _chats,
    "chat": _chat,
    "fix": _fix,
    "log": _log,
    "summary": _summary,
    "cache": _cache,
    "help": _help,
}
