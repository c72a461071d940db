"""`rag mcp` over stdio: the SDK's transport, plus two things a client needs from it.

A line that is no JSON-RPC message but carries an ``id`` gets an error reply: the SDK drops it,
and a client waiting for that id would wait for ever. And when stdin closes the client is gone:
the server stops within a moment instead of finishing an answer nobody will read (an answer in a
worker thread may otherwise run until ``llm.deadline``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

#: Seconds a server whose client closed stdin has to stop on its own before it is ended.
GRACE_S = 2.0


def error_reply(exc: Exception) -> types.JSONRPCError | None:
    """The JSON-RPC error for a line that parsed as an object with an ``id`` but is no message."""
    if not isinstance(exc, ValidationError):
        return None
    for err in exc.errors():
        data = err.get("input")
        if isinstance(data, dict) and isinstance(data.get("id"), str | int) and not isinstance(data["id"], bool):
            return types.JSONRPCError(jsonrpc="2.0", id=data["id"], error=types.ErrorData(
                code=types.INVALID_REQUEST, message="Invalid request: not a JSON-RPC 2.0 message"))
    return None


def _end_soon(on_close: Callable[[], None]) -> None:
    """Stop what the server started (a local model), and end the process if it has not ended by then."""
    on_close()
    timer = threading.Timer(GRACE_S, os._exit, (0,))
    timer.daemon = True
    timer.start()


async def serve_stdio(server: Any, on_close: Callable[[], None]) -> None:
    """Run ``server`` (an SDK MCPServer) on stdin/stdout until the client closes stdin."""
    low = server._lowlevel_server  # what the SDK's own run_stdio_async drives
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def relay() -> None:
            async with send:
                async for item in read_stream:
                    if isinstance(item, Exception) and (reply := error_reply(item)) is not None:
                        await write_stream.send(SessionMessage(reply))
                    else:
                        await send.send(item)
            _end_soon(on_close)

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay)
            await low.run(receive, write_stream, low.create_initialization_options())
