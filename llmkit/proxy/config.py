"""Reading and checking the proxy's config.yaml (LiteLLM's proxy config format).

::

    model_list:                       # one entry per deployment; entries sharing a model_name are
      - model_name: my-model          # deployments of one model, and requests are spread across them
        litellm_params:               # (llmkit_params is accepted too)
          model: my-provider/model    # the "provider/model" string the dispatcher resolves
          api_base: ...               # api_key, api_base: passed to the handler
          api_key: os.environ/KEY     # "os.environ/NAME" is read from the environment
          timeout: 30                 # per-deployment timeout, seconds
          anything_else: ...          # reaches the handler in optional_params
        model_info: {id: ..., input_cost_per_token: ..., output_cost_per_token: ...}
    litellm_settings:                 # (llmkit_settings is accepted too)
      custom_provider_map:
        - {provider: my-provider, custom_handler: module.attribute}   # imported next to this file
      num_retries: 2                  # also in router_settings, with timeout, fallbacks, routing_strategy
      cache: true                     # answer repeated requests from llmkit's response cache ("use");
                                      # or a mode: use, replay, refresh, off (LLMKIT_CACHE, when set, wins)
      request_timeout: 600            # seconds a request may go without progress (default 600)
      log_url: os.environ/LLMKIT_LOG_URL   # llmkit's own: the call log (and cache) in PostgreSQL
    general_settings:
      master_key: os.environ/LLMKIT_MASTER_KEY
      keys:                           # named keys: the name is logged with each call (column "user")
        - {name: alice, key: os.environ/ALICE_KEY}

A bad config raises :class:`ConfigError`, whose message names the file, the key path, what was
wrong and how to fix it. Loading registers the config's handlers with llmkit's provider registry,
and points the call log at ``log_url`` when one is given.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import llmkit
from llmkit.calllog.secrets import hide
from llmkit.errors import BadRequestError
from llmkit.params import split_model

__all__ = ["ConfigError", "Deployment", "ProxyConfig", "load_config"]

logger = logging.getLogger("llmkit.proxy")

ENV_PREFIX = "os.environ/"
# LiteLLM's default: no request waits longer than this for an answer, or between two chunks of a stream.
DEFAULT_REQUEST_TIMEOUT = 600.0
# LiteLLM's rate-limit and weighting keys: llmkit does not act on them, and no handler expects them.
IGNORED_PARAMS = frozenset({"rpm", "tpm", "weight", "max_parallel_requests", "stream_timeout"})


class ConfigError(Exception):
    """The config cannot be used; the message says where and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    # LiteLLM configs carry many settings llmkit does not act on; they are ignored with a warning.
    model_config = ConfigDict(extra="allow")


class _Prices(_Lenient):
    # Read by the call log to price calls; never sent to the handler.
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)


class ModelParams(_Prices):
    model: str
    api_key: str | None = None
    api_base: str | None = None
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("model")
    @classmethod
    def _provider_model(cls, value: str) -> str:
        try:
            _, provider = split_model(value)
        except BadRequestError as exc:
            raise ValueError(exc.message) from None
        if provider is None:
            raise ValueError(
                f"{value!r} names no provider; write 'provider/{value}', where provider is a"
                " registered provider or one listed in custom_provider_map"
            )
        return value


class ModelInfo(_Prices):
    id: str | int | None = None


class ModelEntry(_Strict):
    model_name: str = Field(min_length=1)
    litellm_params: ModelParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)


class ProviderEntry(_Strict):
    provider: str = Field(min_length=1)
    custom_handler: str = Field(min_length=1)

    @field_validator("custom_handler")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if "." not in value.strip(".") or " " in value:
            raise ValueError(
                f"{value!r} is not a dotted reference; write module.attribute, e.g."
                " custom_handler.my_custom_llm for the variable my_custom_llm in custom_handler.py"
                " next to the config file"
            )
        return value


Fallbacks = dict[str, list[str]] | list[dict[str, list[str]]]


class RouterSettings(_Lenient):
    routing_strategy: Literal["round-robin", "simple-shuffle", "least-busy"] = "round-robin"
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    fallbacks: Fallbacks | None = None


class Settings(_Lenient):
    custom_provider_map: list[ProviderEntry] = Field(default_factory=list)
    num_retries: int | None = Field(default=None, ge=0)
    request_timeout: float | None = Field(default=None, gt=0)
    fallbacks: Fallbacks | None = None
    cache: bool | str | None = None
    log_url: str | None = None

    @field_validator("cache")
    @classmethod
    def _cache_mode(cls, value: bool | str | None) -> bool | str | None:
        from llmkit.cache.settings import check_mode

        return value if isinstance(value, bool) else check_mode(value, "cache")


class NamedKey(_Strict):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class GeneralSettings(_Lenient):
    master_key: str | None = None
    keys: list[NamedKey] = Field(default_factory=list)
    max_request_size_mb: float = Field(default=10.0, gt=0)


class RawConfig(_Strict):
    model_list: list[ModelEntry] = Field(min_length=1)
    litellm_settings: Settings = Field(default_factory=Settings)
    llmkit_settings: Settings | None = None
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    environment_variables: dict[str, str] = Field(default_factory=dict)


class Deployment:
    """One model_list entry: where requests for ``model_name`` can go."""

    __slots__ = (
        "id",
        "model_name",
        "model",
        "params",
        "timeout",
        "input_cost_per_token",
        "output_cost_per_token",
        "model_info",
        "in_flight",
    )

    def __init__(self, id: str, model_name: str, params: ModelParams, model_info: ModelInfo) -> None:
        self.id = id
        self.model_name = model_name
        self.model = params.model
        self.timeout = params.timeout
        # Prices for the call log, from litellm_params or model_info.
        self.input_cost_per_token = _first(params.input_cost_per_token, model_info.input_cost_per_token)
        self.output_cost_per_token = _first(params.output_cost_per_token, model_info.output_cost_per_token)
        # Keyword arguments for the dispatcher: api_key/api_base are control parameters, the rest
        # reaches the handler as optional_params.
        extra = {key: value for key, value in (params.model_extra or {}).items() if key not in IGNORED_PARAMS}
        self.params = {"api_key": params.api_key, "api_base": params.api_base, **extra}
        self.model_info = model_info.model_dump()
        self.in_flight = 0

    def __repr__(self) -> str:  # never shows the api_key
        return f"Deployment(id={self.id!r}, model_name={self.model_name!r}, model={self.model!r})"


class ProxyConfig:
    """A checked config: deployments by model_name, routing settings and the master key."""

    def __init__(self, path: Path, raw: RawConfig, deployments: dict[str, list[Deployment]]) -> None:
        settings = raw.llmkit_settings or raw.litellm_settings
        router = raw.router_settings
        self.path = path
        self.deployments = deployments
        self.master_key = raw.general_settings.master_key
        self.keys = {entry.name: entry.key for entry in raw.general_settings.keys}
        self.max_request_bytes = int(raw.general_settings.max_request_size_mb * 1024 * 1024)
        self.routing_strategy = router.routing_strategy
        self.num_retries = _first(router.num_retries, settings.num_retries, 0)
        self.timeout = _first(router.timeout, settings.request_timeout)  # per call, where set
        self.request_timeout = _first(settings.request_timeout, DEFAULT_REQUEST_TIMEOUT)
        self.fallbacks = _fallback_map(_first(router.fallbacks, settings.fallbacks, {}))

    @property
    def model_names(self) -> list[str]:
        return list(self.deployments)

    @property
    def request_limit(self) -> float:
        """Seconds a request may go without progress: ``request_timeout``, but never less than what the
        timeouts set per call allow (each try of a call, with its retries)."""
        per_call = [d.timeout or self.timeout for group in self.deployments.values() for d in group]
        longest = max((t for t in per_call if t is not None), default=0.0)
        return float(max(self.request_timeout, longest * (self.num_retries + 1)))


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _fallback_map(value: Fallbacks) -> dict[str, list[str]]:
    if isinstance(value, dict):
        return dict(value)
    merged: dict[str, list[str]] = {}
    for item in value:  # LiteLLM's spelling: [{"model-a": ["model-b"]}, ...]
        merged.update(item)
    return merged


# -- loading -------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike[str]) -> ProxyConfig:
    """Read, check and apply a config file; ConfigError says what to fix."""
    path = Path(path).resolve()
    environ = os.environ
    data = _read_yaml(path)
    try:
        raw = RawConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None
    for key, value in raw.environment_variables.items():  # LiteLLM's way to set variables from the config
        environ.setdefault(key, value)
    _warn_ignored(raw)
    raw.general_settings.master_key = _resolve(
        path, "general_settings.master_key", raw.general_settings.master_key, environ
    )
    _resolve_keys(path, raw.general_settings.keys, environ)
    settings = raw.llmkit_settings or raw.litellm_settings
    section = "llmkit_settings" if raw.llmkit_settings else "litellm_settings"
    _register_handlers(path, section, settings.custom_provider_map)
    _open_log(path, section, _resolve(path, f"{section}.log_url", settings.log_url, environ))
    deployments = _deployments(path, raw, environ)
    config = ProxyConfig(path, raw, deployments)
    _check_fallbacks(path, config)
    _register_prices(deployments)
    _configure_cache(settings.cache, environ)
    return config


def _configure_cache(value: bool | str | None, environ: Any) -> None:
    """``cache: true`` is LiteLLM's switch; here it turns llmkit's response cache on ("use")."""
    if value is not None and "LLMKIT_CACHE" not in environ:
        llmkit.configure_cache("use" if value is True else value)


def _register_prices(deployments: dict[str, list[Deployment]]) -> None:
    """Give the call log the prices the config names, so proxy calls get a cost."""
    for deployment in (d for group in deployments.values() for d in group):
        if deployment.input_cost_per_token is not None or deployment.output_cost_per_token is not None:
            llmkit.register_model_cost(
                deployment.model,
                input_cost_per_token=deployment.input_cost_per_token or 0.0,
                output_cost_per_token=deployment.output_cost_per_token or 0.0,
            )


def _open_log(path: Path, section: str, url: str | None) -> None:
    """Point the call log at ``log_url`` (PostgreSQL); a database that cannot be used stops the start."""
    if url is None:
        return
    from llmkit.calllog import LogStoreError, configure_log

    try:
        configure_log(url=url)
    except (LogStoreError, ValueError, TypeError) as exc:
        raise ConfigError(f"config file {path}: {section}.log_url: {exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise ConfigError("reading config.yaml needs PyYAML: pip install 'llmkit[proxy]'") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}; check the --config path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML:\n{exc}\nfix the syntax at the line shown") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a YAML mapping with a model_list key, got {type(data).__name__};"
            " see docs/proxy.md for an example"
        )
    return data


_HINTS = {
    "missing": "add this key",
    "extra_forbidden": "remove it, or check its spelling",
    "string_type": "give a string (quote it in YAML)",
    "list_type": "give a YAML list (lines starting with '- ')",
    "dict_type": "give a YAML mapping (key: value lines)",
    "model_type": "give a YAML mapping (key: value lines)",
    "too_short": "give at least one entry",
    "literal_error": "use one of the values listed",
}


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"config file {path} is not valid:"]
    for error in exc.errors(include_url=False):
        where = _key_path(error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(error["type"])
        if error["type"] == "extra_forbidden":
            message = "unknown key"
            hint = _did_you_mean(error["loc"][-1], _known_keys(error["loc"][:-1])) or hint
        lines.append(f"  {where}: {message}" + (f"; {hint}" if hint else ""))
    return "\n".join(lines)


def _did_you_mean(key: Any, known: Any) -> str | None:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def _known_keys(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The keys the config's schema has at ``loc`` (list indexes skipped)."""
    model: Any = RawConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return ()
    return tuple(model.model_fields)


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside a field's type (``Optional[X]``, ``list[X]``), if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("list[dict[str,list[str]]]", "dict[str,list[str]]"):
            continue  # the branches of a Union, not keys
        else:
            out += f".{part}" if out else str(part)
    return out


def _warn_ignored(raw: RawConfig) -> None:
    settings = raw.llmkit_settings or raw.litellm_settings
    for section, model in (
        ("litellm_settings", settings),
        ("router_settings", raw.router_settings),
        ("general_settings", raw.general_settings),
    ):
        if model.model_extra:
            keys = [_with_guess(key, type(model).model_fields) for key in sorted(model.model_extra)]
            logger.warning("llmkit ignores %s: %s", section, ", ".join(keys))
    for index, entry in enumerate(raw.model_list):
        ignored = sorted(IGNORED_PARAMS & set(entry.litellm_params.model_extra or {}))
        if ignored:
            logger.warning("llmkit ignores model_list[%d].litellm_params: %s", index, ", ".join(ignored))


def _with_guess(key: str, known: Any) -> str:
    guess = _did_you_mean(key, known)
    return f"{key} ({guess})" if guess else key


def _resolve(path: Path, where: str, value: Any, environ: Any) -> Any:
    """``os.environ/NAME`` read from the environment; any other value unchanged."""
    if not (isinstance(value, str) and value.startswith(ENV_PREFIX)):
        return value
    name = value[len(ENV_PREFIX) :]
    if name not in environ:
        raise ConfigError(
            f"config file {path}: {where} reads the environment variable {name}, which is not set;"
            f" set it (export {name}=...) before starting, or write the value in the config"
        )
    hide(environ[name])  # whatever key carries it, a value kept out of the config is kept out of the log
    return environ[name]


def _resolve_keys(path: Path, keys: list[NamedKey], environ: Any) -> None:
    names: set[str] = set()
    values: set[str] = set()
    for index, entry in enumerate(keys):
        where = f"general_settings.keys[{index}]"
        entry.key = _resolve(path, f"{where}.key", entry.key, environ)
        if entry.name in names:
            raise ConfigError(
                f"config file {path}: {where}.name {entry.name!r} is used twice; give each key its own name"
            )
        if entry.key in values:
            raise ConfigError(
                f"config file {path}: {where}.key is the same key as another entry's; give each person their own key"
            )
        names.add(entry.name)
        values.add(entry.key)


def _register_handlers(path: Path, section: str, entries: list[ProviderEntry]) -> None:
    for index, entry in enumerate(entries):
        where = f"{section}.custom_provider_map[{index}]"
        handler = _import_reference(path, f"{where}.custom_handler", entry.custom_handler)
        try:
            llmkit.register_provider(entry.provider, handler)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config file {path}: {where}: {exc}") from None


def _import_reference(path: Path, where: str, reference: str) -> Any:
    module_name, _, attribute = reference.rpartition(".")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    _forget_if_elsewhere(module_name.partition(".")[0], folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name != module_name and not module_name.startswith(exc.name + "."):
            raise ConfigError(  # the module is there; something it imports is not
                f"config file {path}: {where}: {module_name!r} was found but cannot be imported: it needs"
                f" {exc.name!r}, which is not installed ({type(exc).__name__}: {exc}); install the package"
                f" that provides {exc.name} in this environment"
            ) from exc
        raise ConfigError(
            f"config file {path}: {where}: cannot import {module_name!r} ({exc}); put {module_name}.py"
            f" in {folder}, next to the config file, or make it importable"
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"config file {path}: {where}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(
            f"config file {path}: {where}: module {module_name!r} has no attribute {attribute!r};"
            f" define {attribute} = YourHandler() in {module.__file__}"
        ) from None


def _forget_if_elsewhere(top: str, folder: str) -> None:
    """Drop an imported module of the same name that lives elsewhere, so this folder's file is used."""
    module = sys.modules.get(top)
    origin = getattr(module, "__file__", None)
    if origin and Path(folder, top + ".py").exists() and Path(origin).parent != Path(folder):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]


def _deployments(path: Path, raw: RawConfig, environ: Any) -> dict[str, list[Deployment]]:
    known = set(llmkit.provider_names())
    counts: dict[str, int] = {}
    out: dict[str, list[Deployment]] = {}
    for index, entry in enumerate(raw.model_list):
        where = f"model_list[{index}].litellm_params"
        params = entry.litellm_params
        _, provider = split_model(params.model)
        if provider not in known:
            raise ConfigError(
                f"config file {path}: {where}.model is {params.model!r}, but no provider {provider!r} is"
                f" registered (registered: {', '.join(sorted(known))}); add"
                f" {{provider: {provider}, custom_handler: module.attribute}} to"
                " litellm_settings.custom_provider_map, or fix the provider name"
            )
        for key in ("api_key", "api_base"):
            setattr(params, key, _resolve(path, f"{where}.{key}", getattr(params, key), environ))
        extra = params.model_extra or {}
        for key, value in extra.items():
            extra[key] = _resolve(path, f"{where}.{key}", value, environ)
        counts[params.model] = counts.get(params.model, 0) + 1
        default_id = params.model if counts[params.model] == 1 else f"{params.model}#{counts[params.model]}"
        deployment_id = str(entry.model_info.id or default_id)
        out.setdefault(entry.model_name, []).append(
            Deployment(deployment_id, entry.model_name, params, entry.model_info)
        )
    return out


def _check_fallbacks(path: Path, config: ProxyConfig) -> None:
    names = set(config.deployments)
    for source, targets in config.fallbacks.items():
        for name in [source, *targets]:
            if name not in names:
                raise ConfigError(
                    f"config file {path}: fallbacks name the model {name!r}, which is no model_name in"
                    f" model_list (model names: {', '.join(sorted(names))}); fix the name or add the model"
                )
