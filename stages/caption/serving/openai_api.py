"""Any OpenAI-compatible chat server: vLLM (`vllm serve`), SGLang, llama.cpp's `llama-server`, TGI, hosted APIs.

A worker keeps up to `server.in_flight` requests open at once (one asyncio loop per worker, the `openai` SDK's
AsyncOpenAI with its own retries off so that this module decides what is retried): a timeout, a refused connection,
429 and 5xx are tried again with a doubling, jittered wait (429's Retry-After respected); once `server.retries` are
spent the task fails as the machine's failure, never as the clip's. A 400 is about that request alone (a prompt over
the context, say): that clip's candidate records it. 401, 403 and 404 are the user's to fix: one line, the run stops.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from vlcurate.pipeline.failures import MachineError, UserError
from vlcurate.stages.caption.serving.base import BACKENDS, Backend, Generation

RETRIED_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
USER_STATUS = frozenset({401, 403, 404})


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    def start(self) -> None:
        import openai

        if not self.server.base_url:
            raise UserError(f"teacher {self.teacher!r}: backend openai needs server.base_url (e.g. "
                            "http://127.0.0.1:8080/v1)")
        self._openai = openai
        self._loop = asyncio.new_event_loop()
        key = os.environ.get(self.server.api_key_env) or "none"
        self._client = openai.AsyncOpenAI(base_url=self.server.base_url, api_key=key, max_retries=0,
                                          timeout=self.server.timeout_s)
        served = self._run(self._retried(self._models))
        if self.model not in served:
            raise UserError(f"teacher {self.teacher!r}: the server at {self.server.base_url} serves {served}, not "
                            f"{self.model!r} (set the teacher's model to one of them)")
        self.provenance = f"served:{self.model} by {self._describe_server()}"

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    async def _models(self) -> list[str]:
        page = await self._client.models.list()
        return sorted(m.id for m in page.data)

    def _describe_server(self) -> str:
        """The server's name and version where it says (llama.cpp: /props build_info; vLLM, SGLang: /version)."""
        import json
        import urllib.request

        root = self.server.base_url.rstrip("/").removesuffix("/v1")
        for path, field, name in (("/props", "build_info", "llama.cpp"), ("/version", "version", "vllm")):
            try:
                with urllib.request.urlopen(root + path, timeout=5.0) as reply:
                    value = json.loads(reply.read()).get(field)
            except Exception:  # a server that does not say: provenance without a version
                value = None
            if value:
                return f"{name} {value}"
        return "an OpenAI-compatible server (version not reported)"

    async def _retried(self, make: Any) -> Any:
        """`make()` awaited until it succeeds, a request-level failure comes back, or the retries are spent."""
        openai = self._openai
        wait = self.server.backoff_s
        for attempt in range(self.server.retries + 1):
            try:
                return await make()
            except openai.APIStatusError as exc:
                if exc.status_code in USER_STATUS:
                    raise UserError(f"teacher {self.teacher!r}: the server at {self.server.base_url} answered "
                                    f"{exc.status_code}: {_said(exc)}") from exc
                if exc.status_code not in RETRIED_STATUS:
                    raise
                failure: Exception = exc
                after = exc.response.headers.get("retry-after") if exc.response is not None else None
                pause = float(after) if after and after.replace(".", "", 1).isdigit() else wait
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:  # APITimeoutError is a connection one
                failure, pause = exc, wait
            if attempt == self.server.retries:
                raise MachineError(f"teacher {self.teacher!r}: the server at {self.server.base_url} failed "
                                   f"{attempt + 1} times: {type(failure).__name__}: {_said(failure)}") from failure
            await asyncio.sleep(pause * random.uniform(0.8, 1.2))
            wait *= 2
        raise AssertionError("unreachable")

    async def _one(self, messages: list[dict[str, Any]], params: dict[str, Any], gate: asyncio.Semaphore) -> Generation:
        extra = self.server.extra_body
        async with gate:
            try:
                reply = await self._retried(lambda: self._client.chat.completions.create(
                    model=self.model, messages=messages, extra_body=extra or None, **params))
            except self._openai.BadRequestError as exc:
                return Generation("", error=f"server refused the request ({exc.status_code}): {_said(exc)}")
        choice = reply.choices[0]
        usage = reply.usage
        return Generation(choice.message.content or "", usage.prompt_tokens if usage else None,
                          usage.completion_tokens if usage else None, choice.finish_reason == "length")

    def generate(self, conversations: list[list[dict[str, Any]]], params: dict[str, Any]) -> list[Generation]:
        """Every conversation's generation, in order. When one fails the task, the requests still open or waiting
        are cancelled and awaited here, so none runs on in a later batch or outlives the worker's loop."""
        async def every() -> list[Generation]:
            gate = asyncio.Semaphore(self.server.in_flight)
            tasks = [asyncio.ensure_future(self._one(m, params, gate)) for m in conversations]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

        return self._run(every())

    def close(self) -> None:
        if getattr(self, "_loop", None) is not None and not self._loop.is_closed():
            self._run(self._client.close())
            self._run(self._loop.shutdown_asyncgens())
            self._loop.close()


def _said(exc: BaseException) -> str:
    """The first line of what the server or the client said, short."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    return (message or str(exc) or type(exc).__name__).splitlines()[0][:300]
