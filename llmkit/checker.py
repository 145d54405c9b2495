"""``llmkit.check(handler)``: run a handler through every path it implements and report what holds.

Each method the handler implements is called directly, with the keyword arguments llmkit passes, and
what it returns is checked against the contract: ModelResponse / ImageResponse / EmbeddingResponse
shapes, stream chunks that are GenericStreamingChunk dicts (or OpenAI chunks) ending in one with a
finish_reason, usage reported or not. Then: sync and async answers agree, an unknown model fails
with a status code (CustomLLMError), and concurrent calls all succeed, each with its own answer,
without blocking the event loop. The report prints as a table and renders as one in a notebook.
"""

from __future__ import annotations

import html
import inspect
import time
from dataclasses import dataclass
from typing import Any

from llmkit.providers.invoke import LoggingObject, call_handler, implements, print_verbose
from llmkit.streaming import ChunkConverter
from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse, ModelResponseStream

__all__ = ["CheckReport", "CheckRow", "check"]

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_MARKS = {PASS: "ok", WARN: "warn", FAIL: "FAIL", SKIP: "-"}
_COLOURS = {PASS: "#1a7f37", WARN: "#9a6700", FAIL: "#cf222e", SKIP: "#6e7781"}
BLOCKED_LOOP_SECONDS = 0.25  # a loop stalled this long during async calls means a blocking handler


@dataclass
class CheckRow:
    check: str
    status: str
    detail: str


class CheckReport:
    """The outcome of :func:`check`: rows of (check, status, detail); ``ok`` when nothing failed."""

    def __init__(self, title: str, rows: list[CheckRow]) -> None:
        self.title = title
        self.rows = rows

    @property
    def ok(self) -> bool:
        return all(row.status != FAIL for row in self.rows)

    def __getitem__(self, name: str) -> CheckRow:
        for row in self.rows:
            if row.check == name:
                return row
        raise KeyError(f"no check named {name!r}; checks: {', '.join(row.check for row in self.rows)}")

    def __str__(self) -> str:
        width = max(len(row.check) for row in self.rows)
        lines = [self.title, ""]
        lines += [f"{_MARKS[row.status]:>4}  {row.check:<{width}}  {row.detail}" for row in self.rows]
        lines += ["", self._summary()]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td style='color:{_COLOURS[row.status]};font-weight:bold'>{_MARKS[row.status]}</td>"
            f"<td style='text-align:left'>{html.escape(row.check)}</td>"
            f"<td style='text-align:left'>{html.escape(row.detail)}</td></tr>"
            for row in self.rows
        )
        return (
            f"<div><b>{html.escape(self.title)}</b><table><thead><tr><th></th><th style='text-align:left'>check</th>"
            f"<th style='text-align:left'>detail</th></tr></thead><tbody>{cells}</tbody></table>"
            f"<p>{html.escape(self._summary())}</p></div>"
        )

    def _summary(self) -> str:
        counts = {status: sum(row.status == status for row in self.rows) for status in (PASS, WARN, FAIL, SKIP)}
        return ", ".join(f"{n} {status}" for status, n in counts.items() if n) + ("" if self.ok else " — see FAIL rows")


def check(
    target: Any,
    model: str | None = None,
    *,
    image_model: str | None = None,
    embedding_model: str | None = None,
    messages: list | None = None,
    prompt: str = "a red square on a white background",
    input: list | None = None,
    bad_model: str = "llmkit-check-no-such-model",
    concurrency: int = 4,
    timeout: float = 60.0,
    **call_params: Any,
) -> CheckReport:
    """Check a handler (a CustomLLM instance, or a provider name such as ``"demo/echo"``).

    ``model`` is the model the handler is called with (taken from ``"provider/model"`` when given that
    way); ``image_model`` and ``embedding_model`` default to it. Other keywords (``api_base=``,
    ``api_key=``, ``temperature=`` ...) are passed to every call as llmkit would pass them.
    """
    handler, name, model = _resolve(target, model)
    probe = _Probe(handler, model, call_params, timeout)
    checker = _Checker(
        probe,
        messages or [{"role": "user", "content": "Say hello to llmkit check"}],
        prompt,
        input or ["hello", "llmkit check"],
        image_model or model,
        embedding_model or model,
    )
    rows = checker.run(bad_model, max(2, concurrency))
    return CheckReport(f"llmkit.check: {name} ({type(handler).__name__}), model {model!r}", rows)


def _resolve(target: Any, model: str | None) -> tuple[Any, str, str]:
    if isinstance(target, str):
        from llmkit.providers.registry import get_handler

        provider, _, from_name = target.partition("/")
        return get_handler(provider), provider, model or from_name or "default"
    if isinstance(target, type):
        raise TypeError(f"check() needs a handler instance, not the class {target.__name__}; pass {target.__name__}()")
    return target, type(target).__name__, model or "default"


def _aio() -> Any:
    from llmkit import aio

    return aio


class _Probe:
    """Calls one handler method the way the dispatcher does; knows nothing about what is checked."""

    def __init__(self, handler: Any, model: str, call_params: dict[str, Any], timeout: float) -> None:
        self.handler = handler
        self.model = model
        self.control = {key: call_params.pop(key) for key in ("api_base", "api_key", "headers") if key in call_params}
        self.params = call_params
        self.timeout = timeout

    def kwargs(self, model: str | None = None, stream: bool = False, **fields: Any) -> dict[str, Any]:
        params = dict(self.params, stream=True) if stream else dict(self.params)
        return {
            "model": model or self.model,
            "api_key": self.control.get("api_key"),
            "api_base": self.control.get("api_base"),
            "headers": self.control.get("headers") or {},
            "optional_params": params,
            "litellm_params": {"custom_llm_provider": None, "metadata": {}},
            "logging_obj": LoggingObject(),
            "timeout": self.timeout,
            "client": None,
            "print_verbose": print_verbose,
            "logger_fn": None,
            "custom_prompt_dict": {},
            "encoding": None,
            "acompletion": False,
            **fields,
        }

    def call(self, method: str, **kwargs: Any) -> Any:
        result = call_handler(getattr(self.handler, method), kwargs)
        if inspect.isawaitable(result):  # a sync method that returned a coroutine
            result = _aio().run_sync(result)
        return result

    async def acall(self, method: str, **kwargs: Any) -> Any:
        kwargs["acompletion"] = True
        result = call_handler(getattr(self.handler, method), kwargs)
        if inspect.isawaitable(result):
            import asyncio

            result = await asyncio.wait_for(result, self.timeout)
        return result

    def implements(self, method: str) -> bool:
        return implements(self.handler, method)


@dataclass
class _Answer:
    """What one path produced, for the rows that compare paths."""

    text: str | None = None
    usage: bool = False
    error: BaseException | None = None


class _Checker:
    def __init__(self, probe: _Probe, messages: list, prompt: str, input: list, image_model: str, embedding_model: str):
        self.probe = probe
        self.messages = messages
        self.prompt = prompt
        self.input = input
        self.image_model = image_model
        self.embedding_model = embedding_model
        self.rows: list[CheckRow] = []
        self.answers: dict[str, _Answer] = {}

    def run(self, bad_model: str, concurrency: int) -> list[CheckRow]:
        chat_kwargs = {"messages": self.messages, "model_response": ModelResponse()}
        self._path("completion", "acompletion", self._whole, chat_kwargs)
        self._path("streaming", "astreaming", self._stream, chat_kwargs)
        image_kwargs = {"model": self.image_model, "prompt": self.prompt, "model_response": ImageResponse()}
        self._path("image_generation", "aimage_generation", self._images, image_kwargs)
        embed_kwargs = {"model": self.embedding_model, "input": self.input, "model_response": EmbeddingResponse()}
        self._path("embedding", "aembedding", self._embeddings, embed_kwargs)
        if not any(self.probe.implements(method) for method in _METHODS):
            self.rows.append(CheckRow("methods", FAIL, "implements no handler method; subclass llmkit.CustomLLM and override completion()"))
            return self.rows
        self._usage_row()
        self._parity_rows()
        self._error_row(bad_model)
        self._concurrency_row(concurrency)
        return self.rows

    # -- one row per method ---------------------------------------------------------------------
    def _path(self, sync: str, async_: str, validate: Any, fields: dict[str, Any]) -> None:
        for method in (sync, async_):
            if not self.probe.implements(method):
                other = async_ if method == sync else sync
                served = f"llmkit serves it from {other}()" if self.probe.implements(other) else "not supported"
                self.rows.append(CheckRow(method, SKIP, f"not implemented; {served}"))
                continue
            kwargs = self.probe.kwargs(stream=sync == "streaming", **fields)
            started = time.perf_counter()
            try:
                if method == sync:
                    status, detail, answer = validate(self.probe.call(method, **kwargs), method)
                else:
                    status, detail, answer = _aio().run_sync(self._acall_validated(method, kwargs, validate))
            except Exception as exc:  # the handler failed: report it, keep checking the rest
                status, detail, answer = FAIL, _describe_error(exc), _Answer(error=exc)
                if "model" in fields and fields["model"] == self.probe.model:
                    detail += f" (if its {sync.split('_')[0]} models have other names, pass {_MODEL_OPTION[sync]}=)"
            seconds = time.perf_counter() - started
            self.rows.append(CheckRow(method, status, f"{detail} ({seconds * 1000:.0f} ms)"))
            self.answers[method] = answer

    async def _acall_validated(self, method: str, kwargs: dict[str, Any], validate: Any) -> tuple[str, str, _Answer]:
        result = await self.probe.acall(method, **kwargs)
        if method == "astreaming":
            return validate(await _collect_async(result, self.probe.timeout), method)
        return validate(result, method)

    def _whole(self, result: Any, method: str) -> tuple[str, str, _Answer]:
        response, problem = _as_model(result, ModelResponse, method)
        if problem:
            return FAIL, problem, _Answer()
        if not response.choices:
            return FAIL, "the ModelResponse has no choices", _Answer()
        choice = response.choices[0]
        text = choice.message.content
        if text is None and not choice.message.tool_calls:
            return FAIL, "choices[0].message has neither content nor tool_calls", _Answer()
        usage = bool(response.usage and response.usage.total_tokens)
        detail = f"ModelResponse, {len(text or '')} chars, finish_reason={choice.finish_reason!r}, usage {'yes' if usage else 'no'}"
        return (PASS if choice.finish_reason else WARN), detail, _Answer(text=text, usage=usage)

    def _stream(self, result: Any, method: str) -> tuple[str, str, _Answer]:
        note = ""
        if isinstance(result, dict):
            note = "; returned one dict, not an iterator: llmkit accepts it, but nothing streams"
            chunks = [result]
        elif method == "streaming":
            if not hasattr(result, "__iter__") or isinstance(result, (str, bytes)):
                return FAIL, f"returned {type(result).__name__}; return an iterator of GenericStreamingChunk dicts", _Answer()
            chunks = list(result)
        else:
            chunks = result
        if not chunks:
            return FAIL, "the stream yielded no chunks", _Answer()
        for i, chunk in enumerate(chunks):
            problem = _chunk_problem(chunk)
            if problem:
                return FAIL, f"chunk {i}: {problem}", _Answer()
        finish = _final_finish_reason(chunks)
        converter = ChunkConverter(self.probe.model)
        for chunk in chunks:
            converter.convert(chunk)
        usage = any(_chunk_usage(chunk) for chunk in chunks)
        text = "".join(converter.texts)
        detail = f"{len(chunks)} chunks, {len(text)} chars, usage {'yes' if usage else 'no'}"
        if not finish:
            return FAIL, detail + "; the last chunk has no finish_reason (set is_finished=True, finish_reason='stop')", _Answer(text, usage)
        detail += f", last chunk finish_reason={finish!r}"
        return (WARN if note else PASS), detail + note, _Answer(text, usage)

    def _images(self, result: Any, method: str) -> tuple[str, str, _Answer]:
        response, problem = _as_model(result, ImageResponse, method)
        if problem:
            return FAIL, problem, _Answer()
        if not response.data:
            return FAIL, "ImageResponse.data is empty", _Answer()
        bad = [i for i, image in enumerate(response.data) if not (image.url or image.b64_json)]
        if bad:
            return FAIL, f"image {bad[0]} has neither url nor b64_json", _Answer()
        kinds = sorted({"url" if image.url else "b64_json" for image in response.data})
        return PASS, f"ImageResponse, {len(response.data)} image(s) as {'/'.join(kinds)}", _Answer(text=str(len(response.data)))

    def _embeddings(self, result: Any, method: str) -> tuple[str, str, _Answer]:
        response, problem = _as_model(result, EmbeddingResponse, method)
        if problem:
            return FAIL, problem, _Answer()
        if len(response.data) != len(self.input):
            return FAIL, f"{len(response.data)} embeddings for {len(self.input)} inputs", _Answer()
        sizes = {len(item.embedding) for item in response.data}
        if 0 in sizes or len(sizes) != 1:
            return FAIL, f"embeddings of uneven or zero length: {sorted(sizes)}", _Answer()
        usage = bool(response.usage and response.usage.total_tokens)
        detail = f"EmbeddingResponse, {len(response.data)} vectors of {sizes.pop()}, usage {'yes' if usage else 'no'}"
        return PASS, detail, _Answer(text=repr([item.embedding for item in response.data]), usage=usage)

    # -- rows across paths --------------------------------------------------------------------------
    def _usage_row(self) -> None:
        chat = {m: a for m, a in self.answers.items() if m in _CHAT_METHODS and a.error is None and a.text is not None}
        if not chat:
            return
        without = [m for m, a in chat.items() if not a.usage]
        if without:
            self.rows.append(CheckRow("usage", WARN, f"no usage from {', '.join(without)}; llmkit estimates token counts there"))
        else:
            self.rows.append(CheckRow("usage", PASS, f"reported by {', '.join(chat)}"))

    def _parity_rows(self) -> None:
        pairs = [
            ("completion", "acompletion"),
            ("streaming", "astreaming"),
            ("completion", "streaming"),
            ("image_generation", "aimage_generation"),
            ("embedding", "aembedding"),
        ]
        for left, right in pairs:
            a, b = self.answers.get(left), self.answers.get(right)
            if a is None or b is None or a.text is None or b.text is None:
                continue
            name = f"{left} = {right}"
            if a.text == b.text and a.usage == b.usage:
                self.rows.append(CheckRow(name, PASS, "same answer"))
            elif a.text == b.text:
                self.rows.append(CheckRow(name, WARN, f"same text, but usage only from {left if a.usage else right}"))
            else:
                self.rows.append(CheckRow(name, WARN, f"answers differ ({a.text[:40]!r} vs {b.text[:40]!r}): fine if the model samples"))

    def _error_row(self, bad_model: str) -> None:
        method = next((m for m in _METHODS if self.probe.implements(m)), None)
        fields = {"messages": self.messages, "model_response": ModelResponse(), "prompt": self.prompt, "input": self.input}
        kwargs = self.probe.kwargs(model=bad_model, stream=method in ("streaming", "astreaming"), **fields)
        try:
            if method.startswith("a"):
                result = _aio().run_sync(self.probe.acall(method, **kwargs))
                if method == "astreaming":
                    _aio().run_sync(_collect_async(result, self.probe.timeout))
            else:
                result = self.probe.call(method, **kwargs)
                if method == "streaming" and not isinstance(result, dict):
                    list(result)
        except Exception as exc:
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                self.rows.append(CheckRow("errors", PASS, f"unknown model {bad_model!r}: {_describe_error(exc)}"))
            else:
                self.rows.append(CheckRow("errors", FAIL, f"unknown model {bad_model!r}: {_describe_error(exc)}"))
            return
        self.rows.append(CheckRow("errors", SKIP, f"{method}() accepted model {bad_model!r}, so no error path was exercised"))

    def _concurrency_row(self, n: int) -> None:
        probe = self.probe
        use_async = probe.implements("acompletion")
        if not (use_async or probe.implements("completion")):
            return
        asked = self.messages[-1].get("content")
        echoes = isinstance(asked, str) and any(
            a.text and asked in a.text for m, a in self.answers.items() if m in ("completion", "acompletion")
        )
        prompts = [f"llmkit check call {i}" for i in range(n)]
        started = time.perf_counter()
        try:
            if use_async:
                texts, stall = _aio().run_sync(self._concurrent_async(prompts))
            else:
                texts, stall = self._concurrent_threads(prompts), 0.0
        except Exception as exc:
            self.rows.append(CheckRow("concurrency", FAIL, f"{n} concurrent calls: {_describe_error(exc)}"))
            return
        seconds = time.perf_counter() - started
        how = "acompletion" if use_async else "completion in threads"
        if stall > BLOCKED_LOOP_SECONDS:
            self.rows.append(CheckRow("concurrency", FAIL, (
                f"{n} concurrent {how} calls blocked the event loop for {stall:.2f} s: acompletion must not call"
                " blocking code (time.sleep, requests, a sync client); await async code instead, or implement only"
                " completion() and let llmkit run it in a thread"
            )))
            return
        if echoes:
            mixed = [p for p, text in zip(prompts, texts) if p not in (text or "")]
            if mixed:
                self.rows.append(CheckRow("concurrency", FAIL, (
                    f"{len(mixed)} of {n} concurrent calls answered another call's prompt (e.g. {mixed[0]!r}):"
                    " does the handler keep per-call state on self?"
                )))
                return
        own = ", each with its own answer" if echoes else ""
        self.rows.append(CheckRow("concurrency", PASS, f"{n} concurrent {how} calls ok{own} ({seconds * 1000:.0f} ms)"))

    def _chat_kwargs(self, content: str) -> dict[str, Any]:
        messages = [*self.messages[:-1], {"role": "user", "content": content}]
        return self.probe.kwargs(messages=messages, model_response=ModelResponse())

    async def _concurrent_async(self, prompts: list[str]) -> tuple[list[str | None], float]:
        import asyncio

        stall = 0.0
        done = False

        async def watch() -> None:  # how long the loop went without running us: a blocking handler
            nonlocal stall
            while not done:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                stall = max(stall, time.perf_counter() - before - 0.01)

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0)
        try:
            results = await asyncio.gather(*(self.probe.acall("acompletion", **self._chat_kwargs(p)) for p in prompts))
        finally:
            done = True
            await watcher
        return [_text_of(r) for r in results], stall

    def _concurrent_threads(self, prompts: list[str]) -> list[str | None]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            return list(pool.map(lambda p: _text_of(self.probe.call("completion", **self._chat_kwargs(p))), prompts))


_MODEL_OPTION = {"image_generation": "image_model", "embedding": "embedding_model"}
_CHAT_METHODS = ("completion", "acompletion", "streaming", "astreaming")
_METHODS = (*_CHAT_METHODS, "image_generation", "aimage_generation", "embedding", "aembedding")


async def _collect_async(result: Any, timeout: float) -> Any:
    import asyncio

    if isinstance(result, dict):
        return result
    if not hasattr(result, "__aiter__"):
        raise TypeError(f"astreaming() returned {type(result).__name__}; make it an async generator that yields chunks")

    async def drain() -> list:
        return [chunk async for chunk in result]

    return await asyncio.wait_for(drain(), timeout)


def _as_model(result: Any, cls: type, method: str) -> tuple[Any, str | None]:
    if isinstance(result, cls):
        return result, None
    if isinstance(result, dict):
        try:
            return cls.model_validate(result), None
        except Exception as exc:
            return None, f"returned a dict that is not a {cls.__name__}: {exc}"
    return None, f"{method}() returned {type(result).__name__}; return a {cls.__name__}"


def _chunk_problem(chunk: Any) -> str | None:
    if isinstance(chunk, ModelResponseStream):
        return None
    if not isinstance(chunk, dict):
        return f"is a {type(chunk).__name__}; yield GenericStreamingChunk dicts"
    if "choices" in chunk:  # an OpenAI chat.completion.chunk: llmkit passes it through
        try:
            ModelResponseStream.model_validate(chunk)
        except Exception as exc:
            return f"an OpenAI-style chunk that does not validate: {exc}"
        return None
    missing = [key for key in ("text", "is_finished", "finish_reason") if key not in chunk]
    if missing:
        return f"GenericStreamingChunk lacks {', '.join(missing)} (LiteLLM needs text, is_finished, finish_reason, usage)"
    if not isinstance(chunk["text"], str):
        return f"text is {type(chunk['text']).__name__}, not str"
    if not isinstance(chunk["is_finished"], bool):
        return f"is_finished is {type(chunk['is_finished']).__name__}, not bool"
    return None


def _final_finish_reason(chunks: list) -> str | None:
    """The finish_reason the stream ended with (an OpenAI stream may end with a usage-only chunk)."""
    for chunk in reversed(chunks):
        raw = chunk.model_dump() if isinstance(chunk, ModelResponseStream) else chunk
        if "choices" not in raw:
            return raw.get("finish_reason") if raw.get("is_finished") else None
        if raw["choices"]:
            return raw["choices"][0].get("finish_reason")
    return None


def _chunk_usage(chunk: Any) -> bool:
    usage = chunk.usage if isinstance(chunk, ModelResponseStream) else chunk.get("usage")
    return bool(usage)


def _text_of(result: Any) -> str | None:
    response = result if isinstance(result, ModelResponse) else ModelResponse.model_validate(result)
    return response.choices[0].message.content if response.choices else None


def _describe_error(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(status, int):
        return f"raised {type(exc).__name__}({status}): {message}"[:300]
    return (
        f"raised {type(exc).__name__}: {message} — without a status code;"
        " raise CustomLLMError(status_code, message) so callers get a typed error"
    )[:400]
