"""The benchmark's handler: a canned chat answer, and a stream of ``chunks`` chunks.

Imports llmkit where it is installed, else litellm, so that both proxies load the same file.
"""

try:
    from llmkit import CustomLLM, ModelResponse
except ImportError:  # run by LiteLLM's proxy, in its own virtualenv
    from litellm import CustomLLM, ModelResponse

CANNED = {
    "model": "canned",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello from the benchmark."}}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
}


class CannedLLM(CustomLLM):
    def completion(self, *args, **kwargs):
        return ModelResponse(**CANNED)

    async def acompletion(self, *args, **kwargs):
        return ModelResponse(**CANNED)

    def streaming(self, *args, **kwargs):
        return iter(_chunks(kwargs))

    async def astreaming(self, *args, **kwargs):
        for chunk in _chunks(kwargs):
            yield chunk


def _chunks(kwargs):
    count = int((kwargs.get("optional_params") or {}).get("chunks", 200))
    for i in range(count):
        last = i == count - 1
        yield {
            "text": f"w{i} ",
            "is_finished": last,
            "finish_reason": "stop" if last else None,
            "index": 0,
            "tool_use": None,
            "usage": None,
        }


canned = CannedLLM()
