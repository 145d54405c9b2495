"""``%%llm`` and ``%llm``: parse the line with IPython's magic_arguments, call the public API, show it.

The magic is a thin shell: the prompt is interpolated (:mod:`llmkit.notebook.interpolate`), the user
message built with its attachments (:mod:`~llmkit.notebook.attachments`), a chat's earlier turns
added (:mod:`~llmkit.notebook.chats`), the calls go through ``llmkit.acompletion`` /
``llmkit.aimage_generation`` with ``source="magic"`` (:mod:`~llmkit.notebook.runs`), several at once
(:mod:`~llmkit.notebook.driver`), rendered by :mod:`~llmkit.notebook.display`. The line commands
(``%llm ...``) are in :mod:`~llmkit.notebook.commands`; the settings in
:mod:`~llmkit.notebook.configurable`. Mistakes in the line and failed calls show a one-line error in
the cell's output, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

import llmkit
from llmkit.notebook import commands
from llmkit.notebook.attachments import user_message
from llmkit.notebook.catalog import check_model
from llmkit.notebook.chats import Chats
from llmkit.notebook.configurable import LLM
from llmkit.notebook.display import FORMATS, RichView, TerminalView, extract_code
from llmkit.notebook.driver import drive
from llmkit.notebook.dryrun import plan_bundle
from llmkit.notebook.explain import EXPLAIN_SYSTEM, ErrorBook, explain_prompt
from llmkit.notebook.interpolate import interpolate
from llmkit.notebook.runs import ModelRun, complete_chat, generate_images, is_image_model, stream_chat

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["LLMMagics"]

SOURCE = "magic"


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

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self._shell = shell  # Magics.shell, typed as never None
        self.settings = LLM(parent=shell)  # c.LLM... from IPython's config, and the settings file
        self._configurables().append(self.settings)
        self.chats = Chats()
        self.errors = ErrorBook(shell)

    def close(self) -> None:
        """Undo what loading did (``%unload_ext llmkit``)."""
        self.errors.close()
        configurables = self._configurables()
        for configurable in (self.settings, self):  # Magics.__init__ added itself too
            if configurable in configurables:
                configurables.remove(configurable)

    def _configurables(self) -> list[Any]:
        return self._shell.configurables  # every Configurable; IPython's own code infers list[InteractiveShell]

    # -- %%llm -----------------------------------------------------------------------------------
    @magic_arguments()
    @argument("models", nargs="*", metavar="MODEL", help="'provider/model' strings or aliases (default: %%llm default)")
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
    @argument("--stream", action="store_true", help="stream the answer (when LLM.stream is False)")
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
        help="how to show the answer (default: LLM.format, markdown); code also puts the answer's code into a"
        " new cell below; math renders LaTeX",
    )
    @argument("--image", action="store_true", help="generate images; the cell is the prompt")
    @argument(
        "--attach",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="add an image to the message (repeatable): a local file is sent as a data URL, a URL as it is",
    )
    @argument("--chat", metavar="NAME", help="continue the conversation kept under NAME (it survives a restart)")
    @argument("--reset", action="store_true", help="with --chat: start the conversation over")
    @argument("--explain", action="store_true", help="send the last cell error and ask for the cause and a fix")
    @argument("--dry-run", action="store_true", help="show the messages and parameters, call nothing")
    @argument("--no-interpolate", action="store_true", help="send {name} references as written")
    @cell_magic
    def llm(self, line: str, cell: str) -> None:
        """Send the cell to one or more models and show their answers as they stream in.

        The cell is the user message; {name} is replaced by the variable `name` when it exists,
        {In[n]} / {Out[n]} by a cell's input / output, {Err[n]} by the traceback of cell n; any other
        braces stay as written.
        """
        try:
            args = self._parse(line)
            prompt = self._prompt(args, cell.lstrip("\n").rstrip())
            params = {**self.settings.default_params, **self._params(args)}
            user = user_message(prompt, args.attach)
        except (UsageError, llmkit.LLMKitError, ValueError) as exc:
            _error(exc)
            return
        fmt = args.format or ("code" if args.explain else self.settings.format)
        runs = [ModelRun(model) for model in args.models]
        images = [args.image or is_image_model(model) for model in args.models]
        system = args.system if args.system is not None else (EXPLAIN_SYSTEM if args.explain else None)
        try:
            if args.chat and args.reset and not args.dry_run:
                self.chats.reset(args.chat)
            messages = {run.target: self._messages(args, run.target, user, system) for run in runs}
        except (llmkit.LLMKitError, ImportError) as exc:  # the log cannot be read
            _error(exc)
            return
        if args.dry_run:
            _show(plan_bundle(runs, images, messages, prompt, params, self._stream(args), args.chat))
            return
        calls = [
            self._call(run, image, messages[run.target], prompt, params, args)
            for run, image in zip(runs, images, strict=True)
        ]
        view = (RichView if _is_rich(self._shell) else TerminalView)(runs, fmt)
        try:
            drive(calls, view)
        except KeyboardInterrupt:
            # Still an interrupt, so that cells queued after this one stop; raised afresh so the
            # traceback ends here with what happened, not deep in a thread wait.
            raise KeyboardInterrupt("every stream of this cell was stopped") from None
        finally:
            self._after(args, runs, messages, system, fmt)

    def _parse(self, line: str) -> Any:
        args = self.llm.parser.parse_intermixed_args(_split(line))  # options may come between models
        if not args.models:
            default = self.settings.default_model
            if not default:
                raise UsageError(
                    "name a model, or set a default with %llm default MODEL: %%llm demo/echo [more models] [options];"
                    " see %llm models"
                )
            args.models = [default]
        for model in args.models:
            check_model(model)
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a variable name, got {args.out!r}")
        if args.reset and not args.chat:
            raise UsageError("--reset starts a chat over: use it with --chat NAME")
        if args.stream and args.no_stream:
            raise UsageError("--stream and --no-stream contradict each other: give one")
        return args

    def _prompt(self, args: Any, cell: str) -> str:
        prompt = cell if args.no_interpolate else interpolate(cell, self._shell.user_ns)
        if not args.explain:
            return prompt
        error = self.errors.latest()
        if error is None:
            raise UsageError("no cell has raised an error yet; run the failing cell, then %llm fix MODEL")
        return explain_prompt(error, prompt)

    def _params(self, args: Any) -> dict[str, Any]:
        params = dict(_parse_param(item) for item in args.param)
        if args.temperature is not None:
            params["temperature"] = args.temperature
        if args.max_tokens is not None:
            params["max_tokens"] = args.max_tokens
        return params

    def _stream(self, args: Any) -> bool:
        return args.stream or (self.settings.stream and not args.no_stream)

    def _messages(self, args: Any, model: str, user: dict[str, Any], system: str | None) -> list[dict[str, Any]]:
        if args.chat:
            return self.chats.messages(args.chat, model, user, system)
        return [*([{"role": "system", "content": system}] if system else []), user]

    def _call(self, run: ModelRun, image: bool, messages: list, prompt: str, params: dict, args: Any) -> Any:
        if image:
            return generate_images(run, prompt, params, SOURCE)
        if args.chat:
            params = {**params, "conversation_id": args.chat}  # a control parameter: the log's column
        if not self._stream(args):
            return complete_chat(run, messages, params, SOURCE)
        return stream_chat(run, messages, params, SOURCE)

    def _after(self, args: Any, runs: list[ModelRun], messages: dict[str, list], system: Any, fmt: str) -> None:
        """Keep what the cell produced: the conversation, the -o variable, the code cell."""
        if args.chat:
            for run in runs:
                if run.status == "done" and run.images is None:
                    self.chats.remember(args.chat, run.target, messages[run.target], run.text, args.system)
        if args.out:
            value = {run.model: run.response if run.error is None else run.error for run in runs}
            self._shell.user_ns[args.out] = value[runs[0].model] if len(runs) == 1 else value
        if fmt == "code":
            done = [run for run in runs if run.status == "done" and run.text]
            if done:
                code = [extract_code(run.text) for run in done]
                if len(done) > 1:
                    code = [f"# {run.model}\n{text}" for run, text in zip(done, code, strict=True)]
                self._shell.set_next_input("\n\n".join(code), replace=False)

    # -- %llm ------------------------------------------------------------------------------------
    @line_magic("llm")  # type: ignore[arg-type]  # IPython types the decorator as returning a union
    def llm_line(self, line: str) -> Any:
        """%llm default | models | alias | chats | chat NAME | fix | log | summary | cache | help"""
        try:
            return commands.run(self, line)
        except (UsageError, llmkit.LLMKitError, ImportError, ValueError) as exc:  # ImportError: pandas missing
            _error(exc)
        return None  # log, summary and chats return a DataFrame, shown as the cell's output


def _split(line: str) -> list[str]:
    from IPython.utils.process import arg_split

    try:
        return arg_split(line, posix=True, strict=True)
    except ValueError as exc:
        raise UsageError(f"could not read %%llm options {line!r}: {exc}") from None


def _is_rich(shell: InteractiveShell) -> bool:
    """Whether a front-end shows display data (a kernel), rather than a terminal printing text."""
    return type(shell.display_pub) is not DisplayPublisher


def _show(data: dict[str, Any]) -> None:
    from IPython.display import display

    display(data, raw=True)


def _error(exc: BaseException) -> None:
    message = exc.message if isinstance(exc, llmkit.APIError) else str(exc)
    print(f"llmkit: {message}", file=sys.stderr)
