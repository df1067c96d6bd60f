"""A loopback TCP proxy whose link can be cut: how a test makes a real server "go away".

The client under test connects to the proxy instead of the server (Redis,
say); ``cut()`` closes every open connection, ``pause()`` also stops
accepting new ones (connection refused, as when the server is down) and
``resume()`` listens again on the same port.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:  # the test's loop is closing: end quietly, the sockets go with it
            pass
        self._writers.difference_update((writer, up_writer))

    def cut(self) -> None:
        """Close every open connection (both sides), as a network failure would."""
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def pause(self) -> None:
        """Refuse new connections and cut the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        if server is not None:
            await server.wait_closed()

    async def resume(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.pause()
