"""The one way to run blocking work (database, HTTP, image decoding) off the event loop."""
from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import Executor
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


async def run_blocking(fn: Callable[..., T], *args: Any, executor: Optional[Executor] = None, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in ``executor`` (default: the loop's default pool).

    A dedicated executor keeps one kind of slow call (e.g. the external API) from starving the
    others; the context (request id) is carried along like ``asyncio.to_thread`` does.
    """
    if executor is None:
        return await asyncio.to_thread(fn, *args, **kwargs)
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, functools.partial(fn, *args, **kwargs))
    return await loop.run_in_executor(executor, call)
