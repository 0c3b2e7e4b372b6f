"""A fake of FreeSWITCH's event socket (mod_event_socket) for ``api`` commands, answering
from the same directory of recorded answers as the fake fs_cli (tests/fakes/fs_cli.py).

It speaks the protocol fs_cli speaks: ``Content-Type: auth/request``; ``auth PASSWORD``
answered ``+OK accepted`` or ``-ERR invalid`` (then a disconnect notice); ``api COMMAND``
answered ``api/response`` with a Content-Length and the body fs_cli prints (the recorded
answer without the newline fs_cli adds). ``hang=True`` accepts connections and says nothing.
"""

from __future__ import annotations

import socket
import threading
from typing import List

import fs_cli

DISCONNECT = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


class FakeEventSocket:
    def __init__(self, answers: str, password: str, hang: bool = False) -> None:
        self.answers = answers
        self.password = password
        self.hang = hang
        self.commands: List[str] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._open: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._open.append(conn)
            if not self.hang:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            conn.sendall(b"Content-Type: auth/request\n\n")
            if self._command(reader) != f"auth {self.password}":
                conn.sendall(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
                conn.sendall(b"Content-Type: text/disconnect-notice\nContent-Length: %d\n\n%s"
                             % (len(DISCONNECT), DISCONNECT))
                return
            conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
            command = self._command(reader)
            if not command.startswith("api "):
                return
            self.commands.append(command[4:])
            body = fs_cli.answer(self.answers, command[4:])
            body = body[:-1] if body.endswith("\n") else body
            data = body.encode("utf-8")
            conn.sendall(b"Content-Type: api/response\nContent-Length: %d\n\n%s" % (len(data), data))

    @staticmethod
    def _command(reader) -> str:
        lines = []
        for raw in reader:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line:
                break
            lines.append(line)
        return "\n".join(lines)

    def close(self) -> None:
        self._server.close()
        for conn in self._open:
            conn.close()
