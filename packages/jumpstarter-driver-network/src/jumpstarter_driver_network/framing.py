"""Length-prefixed datagrams: how UDP datagrams keep their boundaries over a byte stream.

A byte stream may join or split what is sent (the blocking client stream joins small
writes into larger frames) and drops empty writes. Over UdpNetwork's `datagrams` stream,
each datagram therefore travels as a 4-byte big-endian length followed by its bytes,
which survives any re-chunking and carries empty datagrams too. Both the driver and the
client use this module; it needs nothing but the standard library.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!I")

# The largest UDP payload (over IPv6 without jumbograms; IPv4 allows 65507).
MAX_DATAGRAM = 65527


def encode_datagram(datagram: bytes) -> bytes:
    """One datagram, length-prefixed."""
    return HEADER.pack(len(datagram)) + datagram


class DatagramDecoder:
    """Turns chunks of a length-prefixed byte stream back into datagrams."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received of a datagram not yet complete."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """The datagrams that `chunk` completes, in order.

        Raises ValueError if a length is beyond any datagram: the stream is not made of
        length-prefixed datagrams.
        """
        buffer = self._buffer
        buffer += chunk
        datagrams = []
        offset = 0
        size = len(buffer)
        while size - offset >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, offset)
            if length > MAX_DATAGRAM:
                raise ValueError(
                    f"a datagram of {length} bytes announced, over the {MAX_DATAGRAM} UDP carries: "
                    "the stream does not carry length-prefixed datagrams"
                )
            end = offset + HEADER.size + length
            if end > size:
                break
            datagrams.append(bytes(buffer[offset + HEADER.size : end]))
            offset = end
        if offset:
            del buffer[:offset]  # once per chunk, however many datagrams it held
        return datagrams
