# The seed guide's custom_handler.py for the proxy, with `litellm` replaced by `llmkit`.
# The guide shows this file twice, once for chat (completion, acompletion) and once for images
# (aimage_generation), with the same class and variable names; here they are one handler.
import time
from typing import Any, Optional, Union

from httpx import AsyncClient as AsyncHTTPHandler

import llmkit
from llmkit import CustomLLM, completion, get_llm_provider
from llmkit.llms.base import BaseLLM
from llmkit.types.utils import ImageObject, ImageResponse


class MyCustomLLM(CustomLLM):
    def completion(self, *args, **kwargs) -> llmkit.ModelResponse:
        return llmkit.completion(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": "Hello world"}],
            mock_response="Hi!",
        )  # type: ignore

    async def acompletion(self, *args, **kwargs) -> llmkit.ModelResponse:
        return llmkit.completion(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": "Hello world"}],
            mock_response="Hi!",
        )  # type: ignore

    async def aimage_generation(
        self,
        model: str,
        prompt: str,
        model_response: ImageResponse,
        optional_params: dict,
        logging_obj: Any,
        timeout: Optional[Union[float, AsyncHTTPHandler]] = None,
        client: Optional[AsyncHTTPHandler] = None,
    ) -> ImageResponse:
        return ImageResponse(
            created=int(time.time()),
            data=[ImageObject(url="https://example.com/image.png")],
        )


my_custom_llm = MyCustomLLM()
