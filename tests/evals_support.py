"""Handlers for the evaluation tests: a judge that grades by a keyword, answerers with fixed texts."""

import asyncio
import json
import time

import llmkit


def section(body, name):
    """The text under ``[name]`` in a judge prompt built by llmkit.checks."""
    return body.split(f"[{name}]\n", 1)[1].split("\n\n[", 1)[0]


class KeywordJudge(llmkit.CustomLLM):
    """Grades 9/10 an answer containing ``keyword``, else 2/10; in a pairwise prompt, prefers the
    answer that contains it (a tie when both or neither do). ``reply`` overrides every answer."""

    def __init__(self, keyword="Paris", reply=None, delay=0.0):
        self.keyword, self.reply, self.delay = keyword, reply, delay
        self.prompts = []
        self.started = []

    async def acompletion(self, model, messages, optional_params, **kwargs):
        self.started.append(time.monotonic())
        body = messages[-1]["content"]
        self.prompts.append(body)
        await asyncio.sleep(self.delay)
        if self.reply is not None:
            text = self.reply
        elif "[Answer A]" in body:
            a, b = (self.keyword in section(body, name) for name in ("Answer A", "Answer B"))
            verdict = "A" if a and not b else "B" if b and not a else "tie"
            text = json.dumps({"verdict": verdict, "reason": f"mentions {self.keyword}" if a != b else "alike"})
        else:
            grade = 9 if self.keyword in section(body, "Answer") else 2
            text = json.dumps({"score": grade, "reason": f"grade {grade}"})
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": text}}])


class FirstPositionJudge(llmkit.CustomLLM):
    """A judge with a position bias: it always says the first answer shown is better."""

    async def acompletion(self, model, messages, optional_params, **kwargs):
        return llmkit.ModelResponse(
            model=model, choices=[{"message": {"content": '{"verdict": "A", "reason": "first"}'}}]
        )


class Fixed(llmkit.CustomLLM):
    """Answers each model name with a fixed text (``texts[model]``), counting calls; ``delay`` per call."""

    def __init__(self, texts, delay=0.0):
        self.texts, self.delay = texts, delay
        self.calls = []
        self.finished = []

    async def acompletion(self, model, messages, optional_params, **kwargs):
        self.calls.append({"model": model, "optional_params": optional_params, "messages": messages})
        await asyncio.sleep(self.delay)
        self.finished.append(time.monotonic())
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": self.texts[model]}}])


def register(**handlers):
    llmkit.custom_provider_map = [{"provider": name, "custom_handler": h} for name, h in handlers.items()]
