"""Provider plugins: real packages, built with pip and installed into a directory of their own.

Two packages: docs/plugins.md's example, read from the page, and one with broken entry points. They
go into a temporary ``--target`` directory that tests put on ``sys.path`` (or on a subprocess's
``PYTHONPATH``), so the test environment itself is never changed.
"""

import os
import re
import subprocess
import sys
import textwrap
import warnings

import pytest
from fake_servers import FakeServer, torchserve_app

import llmkit
from llmkit.providers import plugins
from llmkit.providers.registry import describe_providers

MESSAGES = [{"role": "user", "content": "hello plugin"}]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "llmkit-shout"
version = "0.1.0"
dependencies = ["llmkit"]

[project.entry-points."llmkit.providers"]
shout = "llmkit_shout.handler:ShoutLLM"
shout-instance = "llmkit_shout.handler:handler"
shout-broken = "llmkit_shout.broken:BrokenLLM"
shout-string = "llmkit_shout.handler:NOT_A_HANDLER"
demo = "llmkit_shout.handler:ShoutLLM"
"""

HANDLER = """\
from llmkit import CustomLLM, ModelResponse


class ShoutLLM(CustomLLM):
    models = ["loud", "louder"]

    def completion(self, model, messages, optional_params, **kwargs):
        text = messages[-1]["content"].upper() + "!" * optional_params.get("excitement", 1)
        return ModelResponse(model=model, choices=[{"message": {"content": text}}])


handler = ShoutLLM()
NOT_A_HANDLER = "just a string"
"""

BROKEN = """\
import llmkit_shout_missing_dependency  # not installed: importing this module fails

class BrokenLLM:
    pass
"""


DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "plugins.md")


def docs_example() -> dict[str, str]:
    """The files of the plugin package shown in docs/plugins.md: each code block after a `path`: line."""
    with open(DOCS, encoding="utf-8") as page:
        text = page.read()
    return dict(re.findall(r"^`([\w./-]+)`:\n\n```\w+\n(.*?)^```", text, flags=re.M | re.S))


def write_package(root, files: dict[str, str]):
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    return root


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Both plugin packages, built from source and installed into a directory of their own."""
    root = tmp_path_factory.mktemp("plugins")
    documented = write_package(root / "llmkit-torchserve", {**docs_example(), "llmkit_torchserve/__init__.py": ""})
    shout = write_package(
        root / "llmkit-shout",
        {
            "pyproject.toml": PYPROJECT,
            "llmkit_shout/__init__.py": "",
            "llmkit_shout/handler.py": HANDLER,
            "llmkit_shout/broken.py": BROKEN,
        },
    )
    site = root / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--no-build-isolation", "--no-index", "--target", str(site), str(documented), str(shout)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return site


@pytest.fixture
def installed(plugin_site, monkeypatch):
    """The plugin importable and discoverable in this process, for this test only."""
    monkeypatch.syspath_prepend(str(plugin_site))
    plugins.reset()
    yield plugin_site
    forget_plugins()


def forget_plugins():
    plugins.reset()
    for name in [name for name in sys.modules if name.startswith(("llmkit_shout", "llmkit_torchserve"))]:
        del sys.modules[name]


def shout(model="shout/loud", **kwargs):
    return llmkit.completion(model, MESSAGES, **kwargs).choices[0].message.content


def test_an_installed_plugin_serves_its_provider_with_no_registration(installed, log):
    assert shout(excitement=3) == "HELLO PLUGIN!!!"
    assert shout("shout-instance/any-model") == "HELLO PLUGIN!"  # an instance works as well as a class
    df = log.to_dataframe(last=2)  # in the call log like any other provider's calls
    assert sorted(df["provider"]) == ["shout", "shout-instance"] and set(df["status"]) == {"ok"}


def test_the_documented_plugin_package_works_as_the_docs_say(installed):
    assert set(docs_example()) == {"pyproject.toml", "llmkit_torchserve/handler.py"}
    with FakeServer(torchserve_app(models=("gpt-tiny",))) as server:
        messages = [{"role": "user", "content": "Hi"}]
        response = llmkit.completion("torchserve/gpt-tiny", messages, api_base=server.url)
        assert response.choices[0].message.content == "you said: Hi"
        stream = llmkit.completion("torchserve/gpt-tiny", messages, api_base=server.url, stream=True)
        assert stream.text() == "you said: Hi "
    assert dict(describe_providers(load_plugins=False))["torchserve"] == "plugin from package llmkit-torchserve 0.1.0"


def test_a_package_installed_after_the_first_lookup_is_found(plugin_site, monkeypatch):
    plugins.reset()
    assert "shout" not in llmkit.provider_names()  # discovered without the package
    monkeypatch.syspath_prepend(str(plugin_site))  # now "installed", as by %pip install in a notebook
    try:
        assert shout() == "HELLO PLUGIN!"
    finally:
        forget_plugins()


def test_a_plugin_that_fails_to_import_is_reported_once_and_breaks_nothing_else(installed):
    with pytest.warns(RuntimeWarning) as caught:
        with pytest.raises(llmkit.InternalServerError) as info:
            shout("shout-broken/m")
    message = str(info.value)
    assert "'llmkit-shout'" in message and "ModuleNotFoundError" in message
    assert "llmkit_shout_missing_dependency" in message and "pip install --force-reinstall llmkit-shout" in message
    assert len(caught) == 1 and "llmkit-shout" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call fails the same way, without a second report
        with pytest.raises(llmkit.InternalServerError, match="ModuleNotFoundError"):
            shout("shout-broken/m")
    assert shout() == "HELLO PLUGIN!"
    assert llmkit.completion("demo/echo", MESSAGES).choices[0].message.content == "hello plugin"


def test_an_entry_point_that_names_no_handler_says_so_and_names_the_package(installed):
    with pytest.warns(RuntimeWarning, match="llmkit-shout"):
        with pytest.raises(llmkit.InternalServerError) as info:
            shout("shout-string/m")
    message = str(info.value)
    assert "shout-string = 'llmkit_shout.handler:NOT_A_HANDLER'" in message
    assert "of package 'llmkit-shout' names str 'just a string', not a handler" in message
    assert "CustomLLM subclass or instance" in message


def test_explicit_registration_wins_over_a_plugin_of_the_same_name(installed):
    class Quiet(llmkit.CustomLLM):
        def completion(self, model, messages, **kwargs):
            return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "shh"}}])

    llmkit.register_provider("shout", Quiet())
    assert shout() == "shh"
    assert (
        dict(describe_providers(load_plugins=False))["shout"]
        == "registered (wins over the plugin from package llmkit-shout 0.1.0)"
    )
    llmkit.unregister_provider("shout")
    assert shout() == "HELLO PLUGIN!"
    llmkit.custom_provider_map = [{"provider": "shout", "custom_handler": Quiet()}]
    assert shout() == "shh"


def test_a_built_in_provider_wins_over_a_plugin_of_the_same_name(installed):
    assert llmkit.completion("demo/echo", MESSAGES).choices[0].message.content == "hello plugin"
    assert (
        dict(describe_providers(load_plugins=False))["demo"]
        == "built-in (wins over the plugin from package llmkit-shout 0.1.0)"
    )


def test_providers_are_listed_with_the_package_they_came_from(installed):
    names = llmkit.provider_names()
    assert {"shout", "shout-instance", "shout-broken", "shout-string", "demo", "openai", "litellm"} <= set(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        origins = dict(describe_providers())
    assert origins["shout"] == "plugin from package llmkit-shout 0.1.0"
    assert origins["shout-broken"].startswith("plugin from package llmkit-shout 0.1.0, not usable: failed to load:")
    assert origins["openai"] == "built-in"
    with pytest.raises(llmkit.BadRequestError, match="registered: demo, litellm, openai, shout, shout-broken"):
        shout("nowhere/m")


def test_llm_models_lists_plugins_and_their_models(installed, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("llmkit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shell.run_line_magic("llm", "models")
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "shout/loud, shout/louder  [plugin from package llmkit-shout 0.1.0]" in lines["shout"]
    assert "not usable: failed to load: ModuleNotFoundError" in lines["shout-broken"]
    assert "demo/echo" in lines["demo"]


def test_other_processes_find_the_plugin_and_import_llmkit_reads_no_entry_points(plugin_site):
    env = {**os.environ, "PYTHONPATH": str(plugin_site), "LLMKIT_LOG": "off"}
    code = textwrap.dedent(
        """
        import sys, llmkit
        from llmkit.providers import plugins
        print("after import:", "importlib.metadata" in sys.modules)
        llmkit.completion("demo/echo", [{"role": "user", "content": "x"}])
        print("entry points read after a built-in call:", plugins._found is not None)
        print(llmkit.completion("shout/loud", [{"role": "user", "content": "from afar"}]).choices[0].message.content)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == [
        "after import: False",
        "entry points read after a built-in call: False",
        "FROM AFAR!",
    ]


def test_the_llmkit_providers_command_lists_plugins_with_their_package(installed, capsys):
    from llmkit.cli import main

    assert main(["providers"]) == 0
    rows = {line.split()[0]: line.split(None, 1)[1] for line in capsys.readouterr().out.splitlines()}
    assert rows["shout"] == "plugin from package llmkit-shout 0.1.0"
    assert rows["torchserve"] == "plugin from package llmkit-torchserve 0.1.0"
    assert "not usable: names str 'just a string', not a handler" in rows["shout-string"]
    assert rows["demo"] == "built-in (wins over the plugin from package llmkit-shout 0.1.0)"
    assert rows["openai"] == "built-in"
