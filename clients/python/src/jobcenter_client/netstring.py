"""Netstring framing (``<length>:<bytes>,``), as jcapi speaks it over TCP and TLS."""

from __future__ import annotations

from typing import List, Optional

#: The largest frame accepted by default: the gateway's default maximum message size.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

# Digits needed for the length of the largest frame we could ever accept, plus slack.
_MAX_LENGTH_DIGITS = 20


class NetstringError(ValueError):
    """The byte stream is not a valid netstring sequence (the connection is unusable)."""


def encode(payload: bytes) -> bytes:
    """Frames one message."""
    return str(len(payload)).encode("ascii") + b":" + payload + b","


class Decoder:
    """An incremental netstring decoder: feed it bytes, get the complete frames."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self._need: Optional[int] = None  # length of the frame being read, once known

    def feed(self, data: bytes) -> List[bytes]:
        """Adds bytes and returns every frame they complete, in order.

        Raises :class:`NetstringError` on a malformed length, a missing trailing comma or a
        frame larger than ``max_frame``; the decoder must not be used afterwards.
        """
        self._buf.extend(data)
        frames: List[bytes] = []
        while True:
            if self._need is None:
                colon = self._buf.find(b":")
                if colon < 0:
                    if len(self._buf) > _MAX_LENGTH_DIGITS or (self._buf and not self._buf.isdigit()):
                        raise NetstringError(f"bad netstring length prefix {bytes(self._buf[:24])!r}")
                    return frames
                digits = bytes(self._buf[:colon])
                if not digits or not digits.isdigit() or len(digits) > _MAX_LENGTH_DIGITS:
                    raise NetstringError(f"bad netstring length prefix {digits[:24]!r}")
                if len(digits) > 1 and digits.startswith(b"0"):
                    raise NetstringError("netstring length with a leading zero")
                length = int(digits)
                if length > self._max:
                    raise NetstringError(f"frame of {length} bytes exceeds the limit of {self._max}")
                del self._buf[: colon + 1]
                self._need = length
            if len(self._buf) < self._need + 1:
                return frames
            if self._buf[self._need] != ord(","):
                raise NetstringError("netstring not terminated by ','")
            frames.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need + 1]
            self._need = None
