"""The model-comparison widget, on ipywidgets 8. All of its state lives in traitlets.

``CompareWidget`` sends one prompt to several models at once and streams each answer into its own
pane, with the pane's figures (latency, time to first token, tokens, tokens per second) and vote
buttons. Scripts and tests drive it through its traits (``w.prompt = ...; w.run()``), a browser shows
the same state. Calls go through ``llmkit.acompletion`` / ``llmkit.aimage_generation`` with
``source="widget"``; votes are kept in ``votes`` and announced to :meth:`CompareWidget.on_vote`
callbacks, which is where a call log can record them.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any, Callable

from llmkit.notebook import missing_extra, require

try:
    import ipywidgets as widgets
    from traitlets import Bool, Dict, Float, Int, List, Unicode, observe
except ImportError as exc:
    raise missing_extra(exc.name) from exc

from llmkit import aio
from llmkit.notebook.catalog import check_model, known_models
from llmkit.notebook.display import UPDATE_INTERVAL, body_html, footer
from llmkit.notebook.runs import ModelRun, generate_images, is_image_model, stream_chat

__all__ = ["CompareWidget"]

SOURCE = "widget"
VOTE_KINDS = ("best", "tie", "all_bad")


class _Pane:
    """One model's column: its name, its answer, its figures and its "best" vote button."""

    def __init__(self, run: ModelRun, on_best: Callable[[str], None]) -> None:
        self.run = run
        self.body = widgets.HTML()
        self.figures = widgets.HTML()
        self.best = widgets.Button(description="best", icon="thumbs-up", layout=widgets.Layout(width="auto"))
        self.best.on_click(lambda _: on_best(run.model))
        header = widgets.HTML(f"<b>{html.escape(run.model)}</b>")
        self.box = widgets.VBox(
            [header, self.body, self.figures, self.best],
            layout=widgets.Layout(flex="1 1 0", min_width="240px", border="1px solid #8884", padding="4px"),
        )
        self._shown: tuple = ()

    def refresh(self, final: bool) -> bool:
        """Show the run's current state; False when nothing changed since the last time."""
        state = (len(self.run.parts), self.run.status, final)
        if state == self._shown:
            return False
        self._shown = state
        self.body.value = body_html(self.run, "markdown", final)
        self.figures.value = f'<span style="font-size:85%;opacity:.7">{html.escape(footer(self.run))}</span>'
        return True


class CompareWidget(widgets.VBox):
    """Compare models side by side: ``CompareWidget(["demo/echo", "demo/lorem"], "Hi").run()``.

    Extra keyword arguments are sent with every call (``tokens_per_second=20``, ``top_p=0.9``).
    """

    prompt = Unicode("", help="the user message")
    system = Unicode("", help="the system prompt; empty for none")
    models = List(Unicode(), help="models to compare: 'provider/model' strings or aliases")
    temperature = Float(None, allow_none=True, help="sent when set")
    max_tokens = Int(None, allow_none=True, help="sent when set")
    params = Dict(help="any other parameters sent with every call")
    image_mode = Bool(False, help="generate images from the prompt instead of chatting")
    running = Bool(False, read_only=True)
    results = Dict(read_only=True, help="{model: answer text}, live while the panes stream")
    figures = Dict(read_only=True, help="{model: {status, latency_s, ttft_s, tokens, tokens_per_second, error}}")
    votes = List(Dict(), read_only=True, help="every vote, oldest first")
    status = Unicode("", read_only=True, help="what the widget last had to say (errors included)")

    def __init__(self, models: list[str] | None = None, prompt: str = "", **params: Any) -> None:
        traits = {
            name: params.pop(name) for name in ("system", "temperature", "max_tokens", "image_mode") if name in params
        }
        super().__init__()
        self._runs: list[ModelRun] = []
        self._panes: list[_Pane] = []
        self._task: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._vote_handlers = widgets.CallbackDispatcher()
        self._build_controls()
        self.set_trait("status", "")
        with self.hold_trait_notifications():
            self.models = list(models) if models is not None else known_models()[:2]
            self.prompt = prompt
            self.params = params
            for name, value in traits.items():
                setattr(self, name, value)

    # -- layout ----------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        self._prompt_box = widgets.Textarea(placeholder="prompt", layout=widgets.Layout(width="100%"))
        self._system_box = widgets.Textarea(
            placeholder="system prompt (optional)", layout=widgets.Layout(width="100%", height="3em")
        )
        self._picker = widgets.TagsInput(allowed_tags=[], allow_duplicates=False)
        # Text boxes, so that "not set" (the handler's own default) can be seen and chosen.
        self._temperature = widgets.Text(placeholder="handler default", description="temperature")
        self._max_tokens = widgets.Text(placeholder="handler default", description="max tokens")
        self._image = widgets.Checkbox(description="images", indent=False)
        self._run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self._stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self._tie = widgets.Button(description="tie", icon="equals")
        self._all_bad = widgets.Button(description="all bad", icon="thumbs-down")
        self._message = widgets.HTML()
        self._pane_row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", width="100%"))

        for trait, control in (("prompt", self._prompt_box), ("system", self._system_box), ("image_mode", self._image)):
            widgets.link((self, trait), (control, "value"))
        self._picker.observe(lambda change: setattr(self, "models", list(change["new"])), "value")
        self._temperature.observe(lambda change: self._number_typed("temperature", float, change["new"]), "value")
        self._max_tokens.observe(lambda change: self._number_typed("max_tokens", int, change["new"]), "value")
        self._run_button.on_click(lambda _: self.start())
        self._stop_button.on_click(lambda _: self.stop())
        self._tie.on_click(lambda _: self._vote_from_button("tie"))
        self._all_bad.on_click(lambda _: self._vote_from_button("all_bad"))

        buttons = widgets.HBox([self._run_button, self._stop_button, self._image, self._tie, self._all_bad])
        self.children = [
            self._prompt_box,
            self._system_box,
            self._picker,
            widgets.HBox([self._temperature, self._max_tokens]),
            buttons,
            self._message,
            self._pane_row,
        ]

    @observe("models")
    def _models_changed(self, change: dict) -> None:
        models = list(change["new"])
        offered = [*known_models(image=self.image_mode), *models]
        self._picker.allowed_tags = list(dict.fromkeys(offered))
        if list(self._picker.value) != models:
            self._picker.value = models

    @observe("image_mode")
    def _image_mode_changed(self, change: dict) -> None:
        self._models_changed({"new": self.models})

    def _number_typed(self, name: str, kind: type, text: str) -> None:
        try:
            value = kind(text) if text.strip() else None
        except ValueError:
            self.set_trait(
                "status", f"{name} must be {'a number' if kind is float else 'a whole number'}, got {text!r}"
            )
            return
        self.set_trait("status", "")
        setattr(self, name, value)

    @observe("temperature", "max_tokens")
    def _number_changed(self, change: dict) -> None:
        control = self._temperature if change["name"] == "temperature" else self._max_tokens
        text = "" if change["new"] is None else str(change["new"])
        if control.value != text:
            control.value = text

    @observe("status")
    def _status_changed(self, change: dict) -> None:
        self._message.value = (
            f'<span style="color:#c0392b">{html.escape(change["new"])}</span>' if change["new"] else ""
        )

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> dict[str, str]:
        """Compare, and return :attr:`results` once every pane has finished (blocks).

        Works in a script and in a notebook cell alike (the calls run on llmkit's own event loop);
        inside a coroutine, ``await w.arun()`` instead.
        """
        return aio.run_sync(self.arun())

    async def arun(self) -> dict[str, str]:
        """Stream every model's answer into its pane at once; return :attr:`results` at the end."""
        if self.running:
            raise RuntimeError("this comparison is still running; call stop() first")
        try:
            for model in self.models:
                check_model(model)
        except Exception as exc:
            self.set_trait("status", str(getattr(exc, "message", exc)))
            raise
        if not self.models:
            self.set_trait("status", "pick at least one model")
            raise ValueError("pick at least one model: w.models = ['demo/echo', 'demo/lorem']")
        self._start_runs()
        self._loop = asyncio.get_running_loop()
        task = self._task = asyncio.ensure_future(asyncio.gather(*self._calls()))
        self._set_running(True)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=UPDATE_INTERVAL)
                self._refresh(final=False)
        except asyncio.CancelledError:  # the caller was cancelled (Ctrl-C in run()): stop the panes too
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            self._refresh(final=True)
            self._set_running(False)
        if not task.cancelled():
            task.exception()  # Stop leaves the gathering future holding a CancelledError: retrieve it
        return dict(self.results)

    def start(self) -> Any:
        """Start a comparison in the background and return at once (what the Run button does).

        Returns a ``concurrent.futures.Future`` that is done when the comparison is.
        """
        return aio.submit(self._arun_quietly())

    def stop(self) -> None:
        """Stop every pane still streaming; what they had so far stays, marked cancelled."""
        task, loop = self._task, self._loop
        if task is not None and not task.done() and loop is not None:
            loop.call_soon_threadsafe(task.cancel)

    async def _arun_quietly(self) -> None:
        if self.running:
            return
        try:
            await self.arun()
        except Exception as exc:  # a button has nobody to raise to: the message shows in the widget
            if not self.status:
                self.set_trait("status", f"{type(exc).__name__}: {exc}")

    def _start_runs(self) -> None:
        self._runs = [ModelRun(model) for model in self.models]
        self._panes = [_Pane(run, lambda model: self._vote_from_button("best", model)) for run in self._runs]
        self._pane_row.children = [pane.box for pane in self._panes]
        self.set_trait("status", "")
        self.set_trait("results", {})
        self.set_trait("figures", {})

    def _calls(self) -> list:
        params = dict(self.params)
        if self.image_mode:
            return [generate_images(run, self.prompt, params, SOURCE) for run in self._runs]
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        head = [{"role": "system", "content": self.system}] if self.system else []
        messages = [*head, {"role": "user", "content": self.prompt}]
        return [
            generate_images(run, self.prompt, params, SOURCE)
            if is_image_model(run.model)
            else stream_chat(run, messages, params, SOURCE)
            for run in self._runs
        ]

    def _set_running(self, running: bool) -> None:
        self.set_trait("running", running)
        self._run_button.disabled = running
        self._stop_button.disabled = not running

    def _refresh(self, final: bool) -> None:
        changed = [pane.refresh(final) for pane in self._panes]
        if any(changed):
            self.set_trait("results", {run.model: run.text for run in self._runs})
            self.set_trait("figures", {run.model: run.figures() for run in self._runs})

    # -- votes -----------------------------------------------------------------------------------
    def vote(self, kind: str, model: str | None = None) -> dict[str, Any]:
        """Record a verdict on the last comparison: ``"best"`` (with its model), ``"tie"`` or ``"all_bad"``."""
        if kind not in VOTE_KINDS:
            raise ValueError(f"vote kind must be one of {', '.join(VOTE_KINDS)}, got {kind!r}")
        compared = [run.model for run in self._runs]
        if not compared:
            raise ValueError("nothing to vote on yet: run a comparison first")
        if (kind == "best") != (model is not None):
            raise ValueError("a 'best' vote names its model (vote('best', 'demo/echo')); 'tie' and 'all_bad' name none")
        if model is not None and model not in compared:
            raise ValueError(f"{model!r} was not in the last comparison ({', '.join(compared)})")
        record = {"kind": kind, "model": model, "models": compared, "prompt": self.prompt, "time": time.time()}
        self.set_trait("votes", [*self.votes, record])
        self._vote_handlers(record)
        return record

    def on_vote(self, callback: Callable[[dict[str, Any]], Any], remove: bool = False) -> None:
        """Call ``callback(vote)`` after every vote (a dict: kind, model, models, prompt, time)."""
        self._vote_handlers.register_callback(callback, remove=remove)

    def _vote_from_button(self, kind: str, model: str | None = None) -> None:
        try:
            self.vote(kind, model)
        except ValueError as exc:
            self.set_trait("status", str(exc))

    # -- export ----------------------------------------------------------------------------------
    def to_dataframe(self) -> Any:
        """The last comparison as a pandas DataFrame, one row per model, with its latest vote."""
        pd = require("pandas")
        verdict = self.votes[-1] if self.votes else None
        rows = []
        for run in self._runs:
            vote = None
            if verdict is not None and run.model in verdict["models"]:
                vote = (
                    verdict["kind"]
                    if verdict["kind"] != "best"
                    else ("best" if verdict["model"] == run.model else None)
                )
            rows.append(
                {
                    "model": run.model,
                    "target": run.target,
                    "prompt": self.prompt,
                    "system": self.system or None,
                    "text": run.text,
                    **run.figures(),
                    "vote": vote,
                }
            )
        return pd.DataFrame(rows)
