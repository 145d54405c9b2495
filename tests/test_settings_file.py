"""llmkit's settings file: where it is, TOML written by our own writer and read back, atomic writes,
clear errors, and the call log's opt-out (`llmkit logs off`) obeyed by a new process."""

import os
import subprocess
import sys

import pytest

from llmkit import settings


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMKIT_CONFIG_DIR", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def test_the_path_is_overridable_and_else_platformdirs(config_dir, monkeypatch):
    assert settings.path() == config_dir / "settings.toml"
    monkeypatch.delenv("LLMKIT_CONFIG_DIR")
    import platformdirs

    assert settings.path() == settings.Path(platformdirs.user_config_dir("llmkit", appauthor=False)) / "settings.toml"


def test_values_round_trip_through_the_file():
    assert settings.read() == {}
    values = {
        "default_model": 'demo/"quoted" \\ back\nslash',
        "stream": False,
        "log": "off",
        "aliases": {"fast": "demo/echo", "with space": "demo/lorem", "ünï": "demo/echo"},
        "default_params": {
            "temperature": 0.25,
            "max_tokens": 100,
            "stop": ["\n", "END"],
            "response_format": {"type": "json_object"},
            "big": 1e300,
            "tab\there": "\x01",
        },
    }
    settings.update(**values)
    assert settings.read() == values
    text = settings.path().read_text()
    assert text.startswith('default_model = "demo/\\"quoted\\" \\\\ back\\nslash"\n') and "\n[aliases]\n" in text
    settings.update(stream=None, aliases={})  # None and an empty table remove the setting
    assert "stream" not in settings.read() and "aliases" not in settings.read()


@pytest.mark.parametrize(
    "values, says",
    [
        ({"default_params": {"seed": None}}, "cannot save default_params.seed = None in the settings file (no null"),
        ({"aliases": {"x": {1, 2}}}, "(a set)"),
        ({"default_params": {"": 1}}, "a setting's name must be a non-empty string"),
    ],
)
def test_values_toml_cannot_hold_are_refused_and_nothing_is_written(values, says):
    settings.update(log="on")
    before = settings.path().read_text()
    with pytest.raises(settings.SettingsError, match=says.replace("(", r"\(").replace(")", r"\)")):
        settings.update(**values)
    assert settings.path().read_text() == before


def test_a_write_is_atomic_and_leaves_no_temporary_file(config_dir):
    settings.update(log="off")
    settings.update(default_model="demo/echo")
    assert sorted(p.name for p in config_dir.iterdir()) == ["settings.toml"]


def test_a_broken_file_is_named_with_the_fix(config_dir):
    config_dir.mkdir()
    (config_dir / "settings.toml").write_text("log = off\n")
    with pytest.raises(settings.SettingsError, match=r"settings.toml is not valid TOML .*; fix it, or delete it"):
        settings.read()


def test_an_unwritable_folder_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("LLMKIT_CONFIG_DIR", str(tmp_path / "file" / "cfg"))
    with pytest.raises(settings.SettingsError, match="set LLMKIT_CONFIG_DIR to a writable folder"):
        settings.update(log="off")


def _log_mode_in_a_new_process(**env):
    code = (
        "import sys, llmkit\n"
        "from llmkit.calllog import config\n"
        "assert 'platformdirs' not in sys.modules and 'tomllib' not in sys.modules\n"  # import reads no file
        "llmkit.completion('demo/echo', [{'role': 'user', 'content': 'hi'}])\n"
        "llmkit.calls.flush()\n"
        "print(config.log_mode(), len(llmkit.calls))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    return done.stdout.split()


def test_logs_off_in_the_settings_file_turns_the_log_off_for_a_new_process(tmp_path):
    env = {"LLMKIT_LOG_PATH": str(tmp_path / "calls.db")}
    settings.update(log="off")
    assert _log_mode_in_a_new_process(**env) == ["off", "0"]
    assert not (tmp_path / "calls.db").exists()
    assert _log_mode_in_a_new_process(**env, LLMKIT_LOG="sqlite") == ["sqlite", "1"]  # the variable comes first
    settings.update(log=None)
    assert _log_mode_in_a_new_process(**env) == ["sqlite", "2"]
