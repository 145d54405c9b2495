"""The magic's settings through a real IPython shell: %llm default, %llm alias (saved), %config LLM...,
c.LLM... from IPython's config, the settings file read by a newly loaded extension, and %unload_ext."""

import pytest
from notebook_support import SlowStream, cell
from traitlets.config import Config

import llmkit
from llmkit import settings
from llmkit.notebook import aliases


def final(messages):
    return messages[-1][2]


def magics_of(shell):
    return shell.magics_manager.registry["LLMMagics"]


@pytest.fixture
def reloaded(shell):
    """Unload and load the extension again, as a new kernel would: settings are read afresh."""

    def reload():
        shell.extension_manager.unload_extension("llmkit")
        aliases.reset()
        shell.extension_manager.load_extension("llmkit")
        return magics_of(shell)

    yield reload
    shell.config = Config()
    reload()


def test_the_default_model_is_used_shown_and_saved(shell, reloaded, capsys):
    shell.run_line_magic("llm", "default")
    assert "no default model yet" in capsys.readouterr().out
    shell.run_line_magic("llm", "default demo/lorem")
    assert f"default model: demo/lorem (saved in {settings.path()})" in capsys.readouterr().out
    assert settings.read()["default_model"] == "demo/lorem"
    done = final(cell(shell, "--max-tokens 5 -p tokens_per_second=0", "no model named"))
    assert done["text/plain"].splitlines()[-1].startswith("demo/lorem · ")

    reloaded()  # a new session reads the file
    shell.run_line_magic("llm", "default")
    assert f"default model: demo/lorem (settings file {settings.path()})" in capsys.readouterr().out
    shell.run_line_magic("llm", "default --clear")
    assert "default_model" not in settings.read()
    assert cell(shell, "", "nothing") == []


def test_a_bad_default_is_refused_before_it_is_saved(shell, capfd):
    shell.run_line_magic("llm", "default nowhere/x")
    assert "unknown provider 'nowhere'" in capfd.readouterr().err
    assert settings.read() == {}


def test_config_magic_and_ipython_config_set_the_traits(shell, reloaded):
    handler = SlowStream(words=1, delay=0)
    llmkit.custom_provider_map = [{"provider": "slow", "custom_handler": handler}]
    shell.run_line_magic("config", "LLM.default_model = 'slow/m'")
    shell.run_line_magic("config", "LLM.default_params = {'temperature': 0.1, 'top_p': 0.5}")
    shell.run_line_magic("config", "LLM.stream = False")
    done = final(cell(shell, "-t 0.9", "hi"))
    assert handler.calls[-1]["optional_params"] == {"temperature": 0.9, "top_p": 0.5}  # the line wins
    assert "whole answer" in done["text/markdown"]  # acompletion: not streamed
    cell(shell, "--stream", "hi")
    assert handler.calls[-1]["messages"][-1]["content"] == "hi" and len(handler.calls) == 2

    shell.config = Config({"LLM": {"aliases": {"quick": "demo/echo"}, "format": "text", "default_model": "quick"}})
    settings.update(default_model="demo/lorem", aliases={"saved": "demo/lorem"})
    magics = reloaded()
    assert aliases.aliases() == {"saved": "demo/lorem", "quick": "demo/echo"}  # the file's, and IPython's
    assert magics.settings.default_model == "quick" and magics.settings.origin("default_model") == "IPython config"
    done = final(cell(shell, "", "configured"))
    assert set(done) == {"text/plain"} and done["text/plain"].startswith("configured")  # format text


def test_a_bad_settings_file_is_named_and_the_magic_still_loads(shell, reloaded, capfd):
    settings.path().parent.mkdir(parents=True, exist_ok=True)
    settings.path().write_text('format = "yaml"\ndefault_model = "demo/echo"\n')
    magics = reloaded()
    assert "settings.toml: format = 'yaml' cannot be used" in capfd.readouterr().err
    assert magics.settings.format == "markdown" and magics.settings.default_model == "demo/echo"
    settings.path().write_text("format = \n")
    magics = reloaded()
    err = capfd.readouterr().err
    assert f"llmkit's settings file {settings.path()} is not valid TOML" in err and "using the defaults" in err
    assert final(cell(shell, "demo/echo", "still works"))["text/markdown"].startswith("still works")
    settings.path().unlink()


def test_aliases_are_saved_listed_and_deleted(shell, reloaded, capfd):
    shell.run_line_magic("llm", "alias fast demo/echo")
    assert settings.read()["aliases"] == {"fast": "demo/echo"}
    reloaded()
    assert aliases.aliases() == {"fast": "demo/echo"}
    assert final(cell(shell, "fast", "via a saved alias"))["text/markdown"].startswith("via a saved alias")
    shell.run_line_magic("llm", "alias --delete fast")
    assert "alias fast deleted" in capfd.readouterr().out
    assert "aliases" not in settings.read() and aliases.aliases() == {}
    shell.run_line_magic("llm", "alias --delete fast")
    assert "no alias 'fast'" in capfd.readouterr().err


def test_a_new_process_finds_the_saved_aliases_without_the_magic(shell):
    """The widgets resolve aliases too: the file is read on first use, with no %load_ext needed."""
    settings.update(aliases={"pal": "demo/echo"})
    aliases.reset()
    assert aliases.resolve("pal") == "demo/echo" and aliases.resolve("demo/lorem") == "demo/lorem"


def test_unload_ext_removes_the_magics_and_reload_brings_them_back(shell):
    configurables = len(shell.configurables)
    shell.run_line_magic("unload_ext", "llmkit")
    assert "llm" not in shell.magics_manager.magics["cell"] and "llm" not in shell.magics_manager.magics["line"]
    assert len(shell.configurables) == configurables - 2  # the magics and their LLM settings
    assert shell.run_cell("%%llm demo/echo\nhi").error_in_exec is not None  # UsageError: no such magic
    shell.run_line_magic("load_ext", "llmkit")
    assert final(cell(shell, "demo/echo", "back"))["text/markdown"].startswith("back")
    shell.run_line_magic("reload_ext", "llmkit")
    assert len(shell.configurables) == configurables
    assert final(cell(shell, "demo/echo", "again"))["text/markdown"].startswith("again")
