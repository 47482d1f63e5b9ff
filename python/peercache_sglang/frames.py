"""The sidecar socket's frames (schema/sidecar-wire.json): u32 BE payload length | u8 version |
u8 kind | u32 BE request id | payload; and SidecarError, what an error frame becomes."""
from __future__ import annotations

import struct

FRAME_VERSION = 1
KIND_REQUEST, KIND_RESPONSE, KIND_EVENT, KIND_ERROR = 1, 2, 3, 4
_HEADER = struct.Struct(">IBBI")
_TIMEVAL = struct.Struct("@ll")  # struct timeval (Linux: time_t, suseconds_t)
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class SidecarError(Exception):
    """The sidecar refused a request; the connection stays usable unless `fatal`. `code` is the error
    frame's code (schema/sidecar-wire.json lists them): act on it, never on the message text."""

    def __init__(self, message: str, fatal: bool = False, code: str = "ERR_REQUEST_FAILED") -> None:
        super().__init__(message)
        self.fatal = fatal
        self.code = code
