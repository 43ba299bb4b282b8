"""Video-note containers built byte by byte: headers that say what a test wants, no real frames.

``mp4_note`` writes a well-formed MP4 (ftyp, moov with one H.264 track: tkhd, hdlr, avc1 with its
avcC SPS, sample tables) whose sizes can lie: the track and sample entry may say 384 px while the
SPS, or an SPS repeated inside a sample, says 16000 px (what a decoder would allocate).
``marker`` lands in a ``free`` box, so fake notes (``FAKE-NOTE:match``) pass the header probe and
still tell the fake verifier what to answer. ``mjpg_avi_bomb`` patches a tiny OpenCV MJPG AVI into
a 16000×16000 one (AVI headers and the JPEG's own frame header), without ever holding such a frame.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional


def box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def rbsp(self) -> bytes:
        bits = self.bits + [1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
        out, zeros = bytearray(), 0
        for byte in raw:  # emulation prevention: 00 00 0x (x <= 3) -> 00 00 03 0x
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def sps(width: int, height: int) -> bytes:
    """A baseline-profile H.264 SPS NAL unit for a width×height frame (multiples of 16)."""
    w = _BitWriter()
    w.u(8, 66), w.u(8, 0xC0), w.u(8, 30)  # profile, constraint flags, level
    w.ue(0), w.ue(0), w.ue(2), w.ue(1), w.u(1, 0)  # sps id, log2 frame num, poc type 2, refs, gaps
    w.ue(width // 16 - 1), w.ue(height // 16 - 1)
    w.u(1, 1), w.u(1, 1), w.u(1, 0), w.u(1, 0)  # frame_mbs_only, direct_8x8, no cropping, no VUI
    return b"\x67" + w.rbsp()


PPS = b"\x68\xce\x3c\x80"


def mp4_note(*, width: int = 384, height: int = 384, sps_size: Optional[tuple[int, int]] = None,
             inband_sps: Optional[tuple[int, int]] = None, marker: bytes = b"") -> bytes:
    """An MP4 video note's headers; ``sps_size``/``inband_sps`` make the codec's own size differ."""
    sps_w, sps_h = sps_size or (width, height)
    sample = b""
    if inband_sps is not None:
        nal = sps(*inband_sps)
        sample = struct.pack(">I", len(nal)) + nal
    avcc = box(b"avcC", bytes([1, 66, 0xC0, 30, 0xFF, 0xE1]), struct.pack(">H", len(sps(sps_w, sps_h))),
               sps(sps_w, sps_h), b"\x01", struct.pack(">H", len(PPS)), PPS)
    avc1 = box(b"avc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", width, height),
               struct.pack(">IIIH", 0x480000, 0x480000, 0, 1), b"\x00" * 32, struct.pack(">Hh", 0x18, -1), avcc)
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    free = box(b"free", marker) if marker else b""

    def moov(chunk_offset: int) -> bytes:
        count = 1 if sample else 0
        stbl = box(b"stbl",
                   full(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
                   full(b"stts", 0, 0, struct.pack(">III", 1, count, 1000) if count else struct.pack(">I", 0)),
                   full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1) if count else struct.pack(">I", 0)),
                   full(b"stsz", 0, 0, struct.pack(">II", 0, count), struct.pack(">I", len(sample)) if count else b""),
                   full(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset) if count else struct.pack(">I", 0)))
        minf = box(b"minf", full(b"vmhd", 0, 1, b"\x00" * 8),
                   box(b"dinf", full(b"dref", 0, 0, struct.pack(">I", 1), full(b"url ", 0, 1))), stbl)
        mdia = box(b"mdia", full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, 30000, 90000, 0x55C4, 0)),
                   full(b"hdlr", 0, 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"VideoHandler\x00"), minf)
        matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        tkhd = full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, 3000), b"\x00" * 8,
                    struct.pack(">hhHH", 0, 0, 0, 0), matrix, struct.pack(">II", width << 16, height << 16))
        mvhd = full(b"mvhd", 0, 0, struct.pack(">IIIIIH", 0, 0, 1000, 3000, 0x10000, 0x100), b"\x00" * 10,
                    matrix, b"\x00" * 24, struct.pack(">I", 2))
        return box(b"moov", mvhd, box(b"trak", tkhd, mdia))

    head = ftyp + free
    size = len(moov(0))
    mdat = box(b"mdat", sample)
    return head + moov(len(head) + size + 8) + mdat


FAKE_MARK = b"FAKE-NOTE:"


def is_fake(data: bytes) -> bool:
    """A note the tests' processors judge without decoding (see tests/fakes/faces.py)."""
    return FAKE_MARK in bytes(data[:256])


def fake_note(verdict: str) -> bytes:
    """A header-only note carrying ``FAKE-NOTE:<verdict>`` (match, mismatch, noface)."""
    return mp4_note(marker=FAKE_MARK + verdict.encode())


def mjpg_avi_bomb(tmp_path: Path, side: int = 16000) -> bytes:
    """A one-frame MJPG AVI whose headers and JPEG frame header say side×side pixels."""
    import cv2
    import numpy as np

    path = tmp_path / "bomb.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (16, 16))
    writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    at = data.find(b"avih") + 8
    struct.pack_into("<II", data, at + 32, side, side)
    at = data.find(b"strf") + 8
    struct.pack_into("<ii", data, at + 4, side, side)
    at = data.find(b"\xff\xc0")  # the JPEG's start-of-frame: precision, height, width
    struct.pack_into(">HH", data, at + 5, side, side)
    return bytes(data)
