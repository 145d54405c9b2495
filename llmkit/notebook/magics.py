"""``%%llm`` and ``%llm``: parse the line with IPython's magic_arguments, call the public API, show it.

The magic is a thin shell: the prompt is interpolated (:mod:`llmkit.notebook.interpolate`), the calls
go through ``llmkit.acompletion`` / ``llmkit.aimage_generation`` with ``source="magic"``
(:mod:`llmkit.notebook.runs`), several at once (:mod:`llmkit.notebook.driver`), rendered by
:mod:`llmkit.notebook.display`. Mistakes in the line and failed calls show a one-line error in the
cell's output, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.text import dedent

import llmkit
from llmkit.notebook import aliases as alias_store
from llmkit.notebook import tables
from llmkit.notebook.catalog import check_model, provider_models
from llmkit.notebook.display import FORMATS, RichView, TerminalView, extract_code
from llmkit.notebook.driver import drive
from llmkit.notebook.interpolate import interpolate
from llmkit.notebook.runs import ModelRun, complete_chat, generate_images, is_image_model, stream_chat
from llmkit.providers.registry import describe_providers

__all__ = ["LLMMagics"]

SOURCE = "magic"

LINE_HELP = """\
%llm models              registered providers, their models, and aliases
%llm alias NAME MODEL    let NAME stand for MODEL ("provider/model") in %%llm and the widgets
%llm log [N]             the last N calls (default 10) as a DataFrame; all columns: llmkit.calls.to_dataframe()
%llm summary             per model: calls, error rate, latency, time to first token, tokens/s, tokens, cost
%llm cache MODE          the response cache: use, replay, refresh or off; %llm cache stats | clear [MODEL]
%llm help                this help, and the options of %%llm
"""


def _parse_param(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.isidentifier():
        raise UsageError(f"-p takes KEY=VALUE, got {item!r}; e.g. -p top_p=0.9 or -p stop='[\"\\n\"]'")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw  # not JSON: the text as written


@magics_class
class LLMMagics(Magics):
    """The ``%%llm`` cell magic and the ``%llm`` line magic."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        # --chat NAME: {"system": text or None, "turns": {model: [user/assistant messages]}}
        self.chats: dict[str, dict[str, Any]] = {}

    # -- %%llm -----------------------------------------------------------------------------------
    @magic_arguments()
    @argument("models", nargs="*", metavar="MODEL", help="one or more 'provider/model' strings or aliases")
    @argument("-s", "--system", help="system prompt")
    @argument("-t", "--temperature", type=float, help="sampling temperature")
    @argument("--max-tokens", type=int, help="maximum tokens in the answer")
    @argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other parameter for the handler (repeatable; VALUE is read as JSON when it parses)",
    )
    @argument("--no-stream", action="store_true", help="wait for the whole answer instead of streaming it")
    @argument(
        "-o",
        "--out",
        metavar="VAR",
        help="store the ModelResponse (a dict model -> response for several models) in VAR",
    )
    @argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="markdown",
        help="how to show the answer; code also puts the answer's code into a new cell below",
    )
    @argument("--image", action="store_true", help="generate images; the cell is the prompt")
    @argument("--chat", metavar="NAME", help="continue the conversation kept under NAME")
    @argument("--dry-run", action="store_true", help="show the messages and parameters, call nothing")
    @argument("--no-interpolate", action="store_true", help="send {name} references as written")
    @cell_magic
    def llm(self, line: str, cell: str) -> None:
        """Send the cell to one or more models and show their answers as they stream in.

        The cell is the user message; {name} is replaced by the variable `name` when it exists,
        {In[n]} / {Out[n]} by a cell's input / output; any other braces stay as written.
        """
        try:
            args = self._parse(line)
            cell = cell.lstrip("\n").rstrip()
            prompt = cell if args.no_interpolate else interpolate(cell, self.shell.user_ns)
            params = self._params(args)
        except (UsageError, llmkit.LLMKitError) as exc:
            _error(exc)
            return
        runs = [ModelRun(model) for model in args.models]
        images = [args.image or is_image_model(model) for model in args.models]
        messages = {run.model: self._messages(args, run.model, prompt) for run in runs}
        if args.dry_run:
            self._show_plan(args, runs, images, messages, prompt, params)
            return
        calls = [self._call(run, image, messages[run.model], prompt, params, args) for run, image in zip(runs, images)]
        view = (RichView if _is_rich(self.shell) else TerminalView)(runs, args.format)
        try:
            drive(calls, view)
        except KeyboardInterrupt:
            # Still an interrupt, so that cells queued after this one stop; raised afresh so the
            # traceback ends here with what happened, not deep in a thread wait.
            raise KeyboardInterrupt("every stream of this cell was stopped") from None
        finally:
            self._after(args, runs, messages)

    def _parse(self, line: str) -> Any:
        args = self.llm.parser.parse_intermixed_args(_split(line))  # options may come between models
        if not args.models:
            raise UsageError("name at least one model: %%llm demo/echo [more models] [options]; see %llm models")
        for model in args.models:
            check_model(model)
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a variable name, got {args.out!r}")
        return args

    def _params(self, args: Any) -> dict[str, Any]:
        params = dict(_parse_param(item) for item in args.param)
        if args.temperature is not None:
            params["temperature"] = args.temperature
        if args.max_tokens is not None:
            params["max_tokens"] = args.max_tokens
        return params

    def _messages(self, args: Any, model: str, prompt: str) -> list[dict[str, Any]]:
        chat = self.chats.get(args.chat, {}) if args.chat else {}
        system = args.system if args.system is not None else chat.get("system")
        history = chat.get("turns", {}).get(model, [])
        head = [{"role": "system", "content": system}] if system else []
        return [*head, *history, {"role": "user", "content": prompt}]

    def _call(self, run: ModelRun, image: bool, messages: list, prompt: str, params: dict, args: Any) -> Any:
        if image:
            return generate_images(run, prompt, params, SOURCE)
        if args.no_stream:
            return complete_chat(run, messages, params, SOURCE)
        return stream_chat(run, messages, params, SOURCE)

    def _after(self, args: Any, runs: list[ModelRun], messages: dict[str, list]) -> None:
        """Keep what the cell produced: the conversation, the -o variable, the code cell."""
        if args.chat:
            chat = self.chats.setdefault(args.chat, {"system": None, "turns": {}})
            if args.system is not None:
                chat["system"] = args.system
            for run in runs:
                if run.status == "done" and run.images is None:
                    turns = [m for m in messages[run.model] if m["role"] != "system"]
                    chat["turns"][run.model] = [*turns, {"role": "assistant", "content": run.text}]
        if args.out:
            value = {run.model: run.response if run.error is None else run.error for run in runs}
            self.shell.user_ns[args.out] = value[runs[0].model] if len(runs) == 1 else value
        if args.format == "code":
            done = [run for run in runs if run.status == "done" and run.text]
            if done:
                code = [extract_code(run.text) for run in done]
                if len(done) > 1:
                    code = [f"# {run.model}\n{text}" for run, text in zip(done, code)]
                self.shell.set_next_input("\n\n".join(code), replace=False)

    def _show_plan(self, args: Any, runs: list, images: list, messages: dict, prompt: str, params: dict) -> None:
        plan = []
        for run, image in zip(runs, images):
            call = {"model": run.target, "source": SOURCE, "params": params}
            if image:
                call.update(kind="image_generation", prompt=prompt)
            else:
                call.update(kind="completion", stream=not args.no_stream, messages=messages[run.model])
            plan.append(call)
        _show({"application/json": {"calls": plan}, "text/plain": json.dumps({"calls": plan}, indent=2, default=str)})

    # -- %llm ------------------------------------------------------------------------------------
    @line_magic("llm")
    def llm_line(self, line: str) -> Any:
        """%llm models | alias NAME MODEL | log [N] | summary | cache MODE|stats|clear [MODEL] | help"""
        words = line.split()
        command, rest = (words[0], words[1:]) if words else ("help", [])
        try:
            if command == "models" and not rest:
                print(_models_text())
            elif command == "alias":
                self._alias(rest)
            elif command == "log" and len(rest) <= 1:
                return _from_log(lambda: tables.recent_calls(_count(rest[0]) if rest else 10))
            elif command == "summary" and not rest:
                return _from_log(llmkit.calls.summary)
            elif command == "cache":
                try:
                    print(_cache_command(rest))
                except ValueError as exc:  # a bad model for clear, or LLMKIT_CACHE holding no mode
                    raise UsageError(str(exc)) from None
            elif command == "help" and not rest:
                print(LINE_HELP + "\n" + dedent(self.llm.__doc__ or ""))
            else:
                raise UsageError(
                    f"unknown %llm command {line.strip()!r}; use one of: models, alias NAME MODEL, log [N], summary,"
                    " cache MODE|stats|clear, help"
                )
        except (UsageError, llmkit.LLMKitError, ImportError) as exc:  # ImportError: pandas missing
            _error(exc)
        return None  # only log and summary return something: a DataFrame, shown as the cell's output

    def _alias(self, rest: list[str]) -> None:
        if len(rest) == 0:
            known = alias_store.aliases()
            print("\n".join(f"{name} -> {model}" for name, model in known.items()) or "no aliases yet")
            return
        if len(rest) != 2:
            raise UsageError("usage: %llm alias NAME provider/model, e.g. %llm alias fast demo/echo")
        name, model = rest
        if "/" in model:
            llmkit.get_llm_provider(model)  # an unknown provider fails now, not at the alias's first use
        try:
            alias_store.set_alias(name, model)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(f"{name} -> {model}")


_CACHE_USAGE = "usage: %llm cache use|replay|refresh|off, %llm cache stats, or %llm cache clear [provider/model]"


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
        s = llmkit.cache.stats()
        rate = "-" if s["hit_rate"] is None else f"{s['hit_rate']:.0%}"
        return (
            f"response cache: {s['mode']}, kept in {s['store']}\n{s['entries']} answer(s), {s['size_bytes']:,} bytes;"
            f" this session: {s['hits']} hits, {s['misses']} misses, hit rate {rate}"
        )
    raise UsageError(f"unknown %llm cache command {' '.join(rest)!r}; {_CACHE_USAGE}")


def _count(word: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise UsageError(f"%llm log takes how many calls to show, e.g. %llm log 20; got {word!r}")
    return int(word)


def _from_log(read: Any) -> Any:
    """A DataFrame read from the call log, or None with a note when the log is off."""
    if tables.log_is_off():
        raise UsageError("the call log is off (LLMKIT_LOG=off); turn it on with llmkit.configure_log('sqlite')")
    return read()


def _split(line: str) -> list[str]:
    from IPython.utils.process import arg_split

    try:
        return arg_split(line, posix=True, strict=True)
    except ValueError as exc:
        raise UsageError(f"could not read %%llm options {line!r}: {exc}") from None


def _models_text() -> str:
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
    return "\n".join(lines)


def _is_rich(shell: Any) -> bool:
    """Whether a front-end shows display data (a kernel), rather than a terminal printing text."""
    return type(shell.display_pub) is not DisplayPublisher


def _show(data: dict[str, Any]) -> None:
    from IPython.display import display

    display(data, raw=True)


def _error(exc: BaseException) -> None:
    message = exc.message if isinstance(exc, llmkit.APIError) else str(exc)
    print(f"llmkit: {message}", file=sys.stderr)
