"""A disk that stops answering: an NBD server (the network block device protocol, fixed newstyle
handshake, simple replies) on a Unix socket, which QEMU's virtio-blk device uses as its drive.
It serves an in-memory image, but holds the first read of one chosen sector for `hold` seconds
before answering it, as a device that has hung would; every other request, and that sector read
again, is answered at once. QEMU's own devices never stall, so this is how a test gives the
block driver one that does.

The protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md. Only what QEMU's
client needs: the handshake with NBD_OPT_GO (every other option is refused as unsupported, so the
client keeps to simple replies), then read, write, flush and disconnect."""
from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
import time

SERVER_MAGIC = b"NBDMAGIC"
OPTION_MAGIC = 0x49484156454F5054          # "IHAVEOPT"
REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_GO = 1, 2, 7
REP_ACK, REP_INFO, REP_ERR_UNSUP = 1, 3, (1 << 31) + 1
INFO_EXPORT = 0
TRANSMISSION_HAS_FLAGS, TRANSMISSION_SEND_FLUSH = 1, 4
CMD_READ, CMD_WRITE, CMD_DISCONNECT, CMD_FLUSH = 0, 1, 2, 3
EINVAL = 22


class StallingDisk:
    """Use as a context manager; `qemu_arguments()` attaches it as the virtio disk."""

    def __init__(self, image: bytearray, stalled_offset: int, hold: float):
        self.image = image
        self.stalled_offset = stalled_offset
        self.hold = hold
        self.reads_of_stalled = 0
        self.held_at: float | None = None
        self.answered_at: float | None = None
        self.error: str | None = None
        self.directory = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.directory.name, "disk.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.sending = threading.Lock()
        self.connection: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "StallingDisk":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.listener.close()
        if self.connection is not None:
            self.connection.close()
        self.directory.cleanup()

    def qemu_arguments(self) -> list[str]:
        return ["-global", "virtio-mmio.force-legacy=false",
                "-drive", f"if=none,format=raw,id=disk,file.driver=nbd,file.server.type=unix,file.server.path={self.path}",
                "-device", "virtio-blk-device,drive=disk"]

    # The connection, on its own thread.

    def _serve(self) -> None:
        try:
            self.connection, _ = self.listener.accept()
            self._handshake()
        except (OSError, AssertionError) as error:
            self.error = f"stalling disk: in the handshake: {error}"
            return
        try:
            self._transmit()
        except OSError:
            pass    # QEMU ended (the session kills it)
        except AssertionError as error:
            self.error = f"stalling disk: {error}"

    def _receive(self, count: int) -> bytes:
        assert self.connection is not None
        data = bytearray()
        while len(data) < count:
            chunk = self.connection.recv(count - len(data))
            if not chunk:
                raise ConnectionError("QEMU closed the connection")
            data += chunk
        return bytes(data)

    def _send(self, data: bytes) -> None:
        assert self.connection is not None
        with self.sending:
            self.connection.sendall(data)

    def _option_reply(self, option: int, kind: int, data: bytes = b"") -> None:
        self._send(struct.pack(">QIII", REPLY_MAGIC, option, kind, len(data)) + data)

    def _handshake(self) -> None:
        self._send(SERVER_MAGIC + struct.pack(">QH", OPTION_MAGIC, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack(">I", self._receive(4))
        assert client_flags & FLAG_FIXED_NEWSTYLE, f"the client did not take the fixed newstyle ({client_flags:#x})"
        while True:
            magic, option, length = struct.unpack(">QII", self._receive(16))
            assert magic == OPTION_MAGIC, f"option magic {magic:#x}"
            self._receive(length)
            if option == OPT_GO:
                export = struct.pack(">HQH", INFO_EXPORT, len(self.image), TRANSMISSION_HAS_FLAGS | TRANSMISSION_SEND_FLUSH)
                self._option_reply(option, REP_INFO, export)
                self._option_reply(option, REP_ACK)
                return
            assert option not in (OPT_EXPORT_NAME, OPT_ABORT), f"the client sent option {option} instead of GO"
            self._option_reply(option, REP_ERR_UNSUP)

    def _transmit(self) -> None:
        while True:
            magic, _, kind, cookie, offset, length = struct.unpack(">IHHQQI", self._receive(28))
            assert magic == REQUEST_MAGIC, f"request magic {magic:#x}"
            inside = offset + length <= len(self.image)
            if kind == CMD_READ:
                if not inside:
                    self._reply(cookie, EINVAL)
                elif offset <= self.stalled_offset < offset + length and self.reads_of_stalled == 0:
                    self.reads_of_stalled += 1
                    self.held_at = time.monotonic()
                    threading.Timer(self.hold, self._answer_held, (cookie, offset, length)).start()
                else:
                    if offset <= self.stalled_offset < offset + length:
                        self.reads_of_stalled += 1
                    self._reply(cookie, 0, bytes(self.image[offset:offset + length]))
            elif kind == CMD_WRITE:
                data = self._receive(length)
                if inside:
                    self.image[offset:offset + length] = data
                self._reply(cookie, 0 if inside else EINVAL)
            elif kind == CMD_FLUSH:
                self._reply(cookie, 0)
            elif kind == CMD_DISCONNECT:
                return
            else:
                self._reply(cookie, EINVAL)

    def _reply(self, cookie: int, error: int, data: bytes = b"") -> None:
        self._send(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, cookie) + data)

    def _answer_held(self, cookie: int, offset: int, length: int) -> None:
        self.answered_at = time.monotonic()
        try:
            self._reply(cookie, 0, bytes(self.image[offset:offset + length]))
        except OSError:
            pass
