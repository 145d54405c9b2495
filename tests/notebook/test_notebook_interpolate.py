"""Interpolation: only {name} of existing variables and {In[n]} / {Out[n]} change; nothing raises."""

import pytest

from llmkit.notebook.interpolate import interpolate

NS = {"topic": "rust", "n": 3, "In": ["", "x = 1", "print(x)"], "Out": {2: 42}}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write about {topic}", "write about rust"),
        ("{n} times {topic}", "3 times rust"),
        ("cell {In[1]} gave {Out[2]}", "cell x = 1 gave 42"),
        ("missing {nothing} and {In[99]} and {Out[7]}", "missing {nothing} and {In[99]} and {Out[7]}"),
        ('d = {"a": 1, "b": [1, 2]}', 'd = {"a": 1, "b": [1, 2]}'),
        ("f'{topic:>10}' f'{n!r}' f'{n=}'", "f'{topic:>10}' f'{n!r}' f'{n=}'"),
        ("{{topic}} and {{ n }}", "{{topic}} and {{ n }}"),
        ('{"model": "x", "params": {"t": 0.1}}', '{"model": "x", "params": {"t": 0.1}}'),
        ("def f():\n    return {k: v for k, v in d.items()}", "def f():\n    return {k: v for k, v in d.items()}"),
        ("{topic[0]} {n.real} {}", "{topic[0]} {n.real} {}"),
        ("unbalanced { brace and } here {topic", "unbalanced { brace and } here {topic"),
    ],
)
def test_interpolation_replaces_only_known_references(text, expected):
    assert interpolate(text, NS) == expected


def test_a_set_of_an_existing_name_is_filled_in_as_documented():
    assert interpolate("s = {topic}", NS) == "s = rust"
