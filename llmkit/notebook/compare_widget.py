"""``CompareWidget``, on ipywidgets 8: all of its state lives in traitlets.

``CompareWidget`` sends one prompt to several models at once and streams each answer into its own
pane, with the pane's figures (latency, time to first token, tokens, tokens per second) and vote
buttons. Scripts and tests drive it through its traits (``w.prompt = ...; w.run()``), a browser shows
the same state. Calls go through ``llmkit.acompletion`` / ``llmkit.aimage_generation`` with
``source="widget"``, and each comparison's calls share a ``run_id`` in the call log; votes are
recorded there as annotations (see :mod:`llmkit.notebook.tables`), kept in ``votes`` and announced to
:meth:`CompareWidget.on_vote` callbacks. With ``blind=True`` the panes are lettered in a shuffled
order and the models are named only once a vote is cast (:mod:`llmkit.evals.blind`).
"""

from __future__ import annotations

import asyncio
import functools
import html
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmkit.notebook import missing_extra, require

try:
    import ipywidgets as widgets
    from traitlets import Bool, Dict, Float, Int, List, Unicode, observe
except ImportError as exc:
    raise missing_extra(exc.name) from exc

import llmkit
from llmkit import aio
from llmkit.evals.blind import Blinding
from llmkit.notebook import tables
from llmkit.notebook.catalog import check_model, known_models
from llmkit.notebook.display import UPDATE_INTERVAL, body_html, footer
from llmkit.notebook.runs import ModelRun, generate_images, is_image_model, stream_chat

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CompareWidget"]

SOURCE = "widget"
VOTE_KINDS = ("best", "tie", "all_bad")


class _Pane:
    """One model's column: its name, its answer, its figures and its "best" vote button."""

    def __init__(self, run: ModelRun, on_best: Callable[[], None], hide: Callable[[str], str]) -> None:
        self.run = run
        self.hide = hide  # blind mode's scrubbing of model names; the identity otherwise
        self.title = widgets.HTML()
        self.body = widgets.HTML()
        self.figures = widgets.HTML()
        self.best = widgets.Button(description="best", icon="thumbs-up", layout=widgets.Layout(width="auto"))
        self.best.on_click(lambda _: on_best())
        self.box = widgets.VBox(
            [self.title, self.body, self.figures, self.best],
            layout=widgets.Layout(flex="1 1 0", min_width="240px", border="1px solid #8884", padding="4px"),
        )
        self._shown: tuple = ()

    def refresh(self, final: bool, title: str) -> bool:
        """Show the run's current state; False when nothing changed since the last time."""
        state = (len(self.run.parts), self.run.status, final, title)
        if state == self._shown:
            return False
        self._shown = state
        self.title.value = f"<b>{html.escape(title)}</b>"
        self.body.value = self.hide(body_html(self.run, "markdown", final))
        self.figures.value = f'<span style="font-size:85%;opacity:.7">{html.escape(self.hide(footer(self.run)))}</span>'
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
    blind = Bool(False, help="letter the panes in a shuffled order and name the models only after a vote")
    mapping = Dict(None, allow_none=True, read_only=True, help='blind mode: None until the vote, then {"A": model}')
    running = Bool(False, read_only=True)
    results = Dict(read_only=True, help="{model (or label, when blind): answer text}, live while the panes stream")
    figures = Dict(
        read_only=True, help="{model or label: {status, latency_s, ttft_s, tokens, tokens_per_second, error}}"
    )
    votes = List(Dict(), read_only=True, help="every vote, oldest first")
    comparison_id = Unicode("", read_only=True, help="the run_id of the last comparison's calls in the call log")
    status = Unicode("", read_only=True, help="what the widget last had to say (errors included)")

    def __init__(self, models: list[str] | None = None, prompt: str = "", **params: Any) -> None:
        traits = {
            name: params.pop(name)
            for name in ("system", "temperature", "max_tokens", "image_mode", "blind")
            if name in params
        }
        super().__init__()
        self._runs: list[ModelRun] = []
        self._panes: list[_Pane] = []
        self._blinding: Blinding | None = None
        self._task: asyncio.Future | None = None
        self._calls_made: Any = None  # the call log's capture of the last comparison
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
        # The tasks inherit the capture: their calls are logged under this comparison's run_id.
        with llmkit.calls.capture(run_id=self.comparison_id) as self._calls_made:
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
        self._blinding = Blinding(list(self.models)) if self.blind else None
        shown = self._blinding.order if self._blinding else list(self.models)
        self._runs = [ModelRun(model) for model in shown]
        vote_best = functools.partial(self._vote_from_button, "best")
        self._panes = [_Pane(run, functools.partial(vote_best, self._key(run)), self._hide) for run in self._runs]
        self._pane_row.children = [pane.box for pane in self._panes]
        self.set_trait("mapping", None)
        self.set_trait("comparison_id", uuid.uuid4().hex)
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
        blinding = self._blinding
        changed = [
            pane.refresh(final, blinding.title(pane.run.model) if blinding else pane.run.model) for pane in self._panes
        ]
        if any(changed):
            self.set_trait("results", {self._key(run): self._hide(run.text) for run in self._runs})
            self.set_trait("figures", {self._key(run): self._blind_figures(run) for run in self._runs})

    # -- blind mode ------------------------------------------------------------------------------
    def _key(self, run: ModelRun) -> str:
        """How a run is named in results, figures and votes: its model, or its letter when blind."""
        return self._blinding.label(run.model) if self._blinding else run.model

    def _hide(self, text: str) -> str:
        if self._blinding is None:
            return text
        names = {name: self._key(run) for run in self._runs for name in (run.model, run.target)}
        return self._blinding.scrub(text, names)

    def _blind_figures(self, run: ModelRun) -> dict[str, Any]:
        figures = run.figures()
        if figures["error"] is not None:
            figures["error"] = self._hide(figures["error"])
        return figures

    def _reveal(self) -> None:
        if self._blinding is None or self._blinding.revealed:
            return
        self.set_trait("mapping", self._blinding.reveal())
        self._refresh(final=True)  # the titles and footers now name the models

    # -- votes -----------------------------------------------------------------------------------
    def vote(self, kind: str, model: str | None = None) -> dict[str, Any]:
        """Judge the last comparison: ``"best"`` (with its model, or its letter when blind), ``"tie"``
        or ``"all_bad"``.

        The vote is recorded in the call log on the comparison's calls (annotation ``"vote"``: the
        chosen call ``best`` and the others ``not_best``, or all of them ``tie`` / ``all_bad``). A
        blind comparison is revealed by its first vote (:attr:`mapping`), which is stored with it.
        """
        if kind not in VOTE_KINDS:
            raise ValueError(f"vote kind must be one of {', '.join(VOTE_KINDS)}, got {kind!r}")
        compared = [run.model for run in self._runs]
        if not compared:
            raise ValueError("nothing to vote on yet: run a comparison first")
        if self.running:
            raise ValueError("the comparison is still running: vote when it has finished (or stop it)")
        if (kind == "best") != (model is not None):
            raise ValueError("a 'best' vote names its model (vote('best', 'demo/echo')); 'tie' and 'all_bad' name none")
        if self._blinding is not None and model is not None:
            model = self._blinding.model(model)  # a letter; ValueError naming the letters otherwise
        if model is not None and model not in compared:
            raise ValueError(f"{model!r} was not in the last comparison ({', '.join(compared)})")
        self._reveal()
        self._log_vote(kind, model)
        record: dict[str, Any] = {
            "kind": kind,
            "model": model,
            "models": compared,
            "prompt": self.prompt,
            "time": time.time(),
            "comparison_id": self.comparison_id,
        }
        if self.mapping is not None:
            record["mapping"] = dict(self.mapping)
        self.set_trait("votes", [*self.votes, record])
        self._vote_handlers(record)
        return record

    def _log_vote(self, kind: str, model: str | None) -> None:
        records = self._calls_made.records if self._calls_made is not None else []
        if not records:  # stopped before any call began
            return
        if tables.log_is_off():
            self.set_trait("status", "the call log is off (LLMKIT_LOG=off): this vote is kept in w.votes only")
            return
        chosen = next((run.target for run in self._runs if run.model == model), None)
        tables.record_vote(records, kind, chosen, self.comparison_id, self.mapping, SOURCE)

    def on_vote(self, callback: Callable[[dict[str, Any]], Any], remove: bool = False) -> None:
        """Call ``callback(vote)`` after every vote (a dict: kind, model, models, prompt, time, comparison_id)."""
        self._vote_handlers.register_callback(callback, remove=remove)

    def _vote_from_button(self, kind: str, model: str | None = None) -> None:
        try:
            self.vote(kind, model)
        except ValueError as exc:
            self.set_trait("status", str(exc))

    # -- export ----------------------------------------------------------------------------------
    def to_dataframe(self) -> pd.DataFrame:
        """The last comparison's calls from the call log, one row per model in the widget's order,
        with every column of ``llmkit.calls.to_dataframe()`` and a ``vote`` column (best, not_best,
        tie, all_bad, or None before a vote)."""
        require("pandas")  # before anything else, to name the extra that installs it
        if not self.comparison_id:
            raise ValueError("nothing to show yet: run a comparison first")
        if self._blinding is not None and not self._blinding.revealed:
            raise ValueError("this comparison is blind: vote first, then its rows name the models")
        if tables.log_is_off():
            raise RuntimeError("the call log is off (LLMKIT_LOG=off); turn it on with llmkit.configure_log('sqlite')")
        df: pd.DataFrame = llmkit.calls.to_dataframe(run_id=self.comparison_id)
        position = df["model"].astype(str).map({run.target: i for i, run in enumerate(self._runs)})
        df = df.iloc[position.argsort(kind="stable")].reset_index(drop=True)
        df["vote"] = df["annotations"].map(tables.vote_of)
        return df
