"""Read a video note's container and stream headers, without decoding a frame (decode bombs).

A 1.66 MB one-frame MJPG of 16000×16000 px passes the size check, and decoding it takes 2.2 GB
and 17 s. So before any decoder sees a note, :func:`probe` reads its headers in pure Python and
refuses what a Telegram video note never is:

* a container other than MP4/QuickTime (ISO BMFF), or a fragmented one;
* a video codec other than H.264 (``avc1``/``avc3``) or MPEG-4 Part 2 (``mp4v`` whose decoder
  config says MPEG-4 Visual: ffmpeg picks the codec from that byte, and OpenCV writes MJPEG as
  ``mp4v`` too);
* a frame larger than ``max_side`` pixels on either side (video notes are square, at most 640 px;
  the default limit is 1280). The size is taken from *every* place a decoder could take it: the
  track header, the sample entry, the codec's own parameter sets (H.264 SPS in ``avcC``, MPEG-4
  VOL header in ``esds``) and parameter sets repeated inside the samples, which a decoder would
  switch to mid-stream.

Pure bytes in, a :class:`Probe` out; never raises for bad input. Cost: one pass over the box
tree and the NAL/start-code headers of each video sample (a few milliseconds for a full 8 MB note).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Iterator, Optional

DEFAULT_MAX_SIDE = 1280
MAX_SAMPLES = 20000  # 60 s at 60 fps is 3,600; more is not a video note
H264 = ("avc1", "avc3")
MPEG4 = ("mp4v",)
MPEG4_VISUAL = 0x20  # esds objectTypeIndication of MPEG-4 Part 2 (0x6C would be JPEG)
_CONTAINERS = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str  # ok | unsupported_container | unsupported_codec | too_big_frame | corrupt_video
    codec: str = ""
    width: int = 0
    height: int = 0
    max_side: int = DEFAULT_MAX_SIDE

    @property
    def message_key(self) -> str:
        return self.reason

    def params(self) -> dict[str, Any]:
        return {"codec": self.codec, "width_px": self.width, "height_px": self.height, "max_px": self.max_side}


class _Bad(Exception):
    """Headers that cannot be read: the note is refused as corrupt."""


class _Refuse(Exception):
    def __init__(self, reason: str, codec: str = "", width: int = 0, height: int = 0):
        super().__init__(reason)
        self.reason, self.codec, self.width, self.height = reason, codec, width, height


# ------------------------------------------------------------------------------------ boxes
def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _Bad("truncated box")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _Bad("box runs past its parent")
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> Optional[tuple[int, int]]:
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


def _path(data: bytes, start: int, end: int, *kinds: bytes) -> Optional[tuple[int, int]]:
    span: Optional[tuple[int, int]] = (start, end)
    for kind in kinds:
        if span is None:
            return None
        span = _child(data, span[0], span[1], kind)
    return span


# ------------------------------------------------------------------------------------ bits
class _Bits:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def bit(self) -> int:
        if self.pos >= 8 * len(self.data):
            raise _Bad("parameter set ends early")
        value = (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise _Bad("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    """Drop H.264 emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00") if b"\x00\x00\x03" in nal else nal


def sps_size(nal: bytes) -> tuple[int, int]:
    """(width, height) in pixels a decoder allocates for an H.264 SPS NAL unit (before cropping)."""
    r = _Bits(_unescape(nal[1:]))
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            r.bit()
        r.ue(), r.ue()  # bit depths
        r.bit()
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if r.bit():
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num_minus4
    poc = r.ue()
    if poc == 0:
        r.ue()
    elif poc == 1:
        r.bit(), r.se(), r.se()
        for _ in range(min(r.ue(), 255)):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.bit()
    return width_mbs * 16, (2 - frame_mbs_only) * height_units * 16


def vol_size(header: bytes) -> tuple[int, int]:
    """(width, height) of an MPEG-4 Part 2 video object layer header (after its start code)."""
    r = _Bits(header)
    r.bit()  # random_accessible_vol
    r.bits(8)  # video_object_type_indication
    verid = 1
    if r.bit():  # is_object_layer_identifier
        verid = r.bits(4)
        r.bits(3)
    if r.bits(4) == 0xF:  # extended pixel aspect ratio
        r.bits(16)
    if r.bit():  # vol_control_parameters
        r.bits(3)
        if r.bit():  # vbv_parameters
            r.bits(79)
    shape = r.bits(2)
    if shape == 3 and verid != 1:
        r.bits(4)
    if shape != 0:
        raise _Refuse("unsupported_codec", "mp4v")  # only rectangular frames
    r.bit()
    resolution = r.bits(16)
    r.bit()
    if r.bit():  # fixed_vop_rate
        r.bits(max(1, (resolution - 1).bit_length()))
    r.bit()
    width = r.bits(13)
    r.bit()
    return width, r.bits(13)


def _vols(stream: bytes) -> Iterator[tuple[int, int]]:
    """The size of every VOL header (start codes 00 00 01 20..2F) in an MPEG-4 Part 2 stream."""
    pos = stream.find(b"\x00\x00\x01")
    while pos >= 0:
        code = stream[pos + 3] if pos + 3 < len(stream) else -1
        if 0x20 <= code <= 0x2F:
            yield vol_size(stream[pos + 4:pos + 4 + 64])
        pos = stream.find(b"\x00\x00\x01", pos + 3)


# ------------------------------------------------------------------------------------ tracks
def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor at pos."""
    tag, pos, size = data[pos], pos + 1, 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, pos + size


def _esds_config(data: bytes, start: int, end: int) -> tuple[int, bytes]:
    """(objectTypeIndication, DecoderSpecificInfo) from an esds box payload."""
    tag, pos, stop = _descriptor(data, start + 4)  # after version/flags
    if tag != 0x03:
        raise _Bad("esds without an ES descriptor")
    flags = data[pos + 2]
    pos += 3 + (2 if flags & 0x80 else 0)
    if flags & 0x40:
        pos += 1 + data[pos]
    if flags & 0x20:
        pos += 2
    tag, pos, stop = _descriptor(data, pos)
    if tag != 0x04:
        raise _Bad("esds without a decoder config")
    object_type = data[pos]
    info = b""
    if pos + 13 < stop:
        tag, ipos, istop = _descriptor(data, pos + 13)
        if tag == 0x05:
            info = bytes(data[ipos:min(istop, end)])
    return object_type, info


def _samples(data: bytes, stbl: tuple[int, int]) -> Iterator[tuple[int, int]]:
    """(offset, size) of every sample of a track, from stsz, stsc and stco/co64."""
    stsz = _child(data, *stbl, b"stsz")
    stsc = _child(data, *stbl, b"stsc")
    chunks_box = _child(data, *stbl, b"stco") or _child(data, *stbl, b"co64")
    if stsz is None or stsc is None or chunks_box is None:
        raise _Bad("sample table incomplete")
    fixed, count = struct.unpack_from(">II", data, stsz[0] + 4)
    if count > MAX_SAMPLES:
        raise _Refuse("unsupported_codec")
    sizes = [fixed] * count if fixed else list(struct.unpack_from(f">{count}I", data, stsz[0] + 12))
    wide = _child(data, *stbl, b"co64") is not None and _child(data, *stbl, b"stco") is None
    n_chunks = struct.unpack_from(">I", data, chunks_box[0] + 4)[0]
    if n_chunks > MAX_SAMPLES:
        raise _Refuse("unsupported_codec")
    offsets = struct.unpack_from(f">{n_chunks}{'Q' if wide else 'I'}", data, chunks_box[0] + 8)
    n_runs = struct.unpack_from(">I", data, stsc[0] + 4)[0]
    runs = [struct.unpack_from(">III", data, stsc[0] + 8 + 12 * i) for i in range(min(n_runs, MAX_SAMPLES))]
    sample = 0
    for index, (first, per_chunk, _) in enumerate(runs):
        last = runs[index + 1][0] - 1 if index + 1 < len(runs) else n_chunks
        for chunk in range(first, last + 1):
            if not 1 <= chunk <= n_chunks:
                raise _Bad("sample-to-chunk table points nowhere")
            offset = offsets[chunk - 1]
            for _ in range(min(per_chunk, count - sample)):
                yield offset, sizes[sample]
                offset += sizes[sample]
                sample += 1


def _check(width: int, height: int, codec: str, max_side: int) -> None:
    if width <= 0 or height <= 0 or max(width, height) > max_side + 15:  # +15: 16-px macroblocks
        raise _Refuse("too_big_frame", codec, width, height)


def _video_track(data: bytes, trak: tuple[int, int], max_side: int) -> Optional[tuple[str, int, int]]:
    hdlr = _path(data, *trak, b"mdia", b"hdlr")
    if hdlr is None or data[hdlr[0] + 8:hdlr[0] + 12] != b"vide":
        return None  # audio, subtitles: no decoder of ours touches them
    tkhd = _child(data, *trak, b"tkhd")
    if tkhd is not None:
        at = tkhd[0] + (88 if data[tkhd[0]] == 1 else 76)
        width, height = (v >> 16 for v in struct.unpack_from(">II", data, at))
        if width or height:
            _check(width, height, "", max_side)
    stbl = _path(data, *trak, b"mdia", b"minf", b"stbl")
    stsd = _child(data, *stbl, b"stsd") if stbl else None
    if stbl is None or stsd is None:
        raise _Bad("video track without sample descriptions")
    found: Optional[tuple[str, int, int]] = None
    length_size = 4
    for kind, start, end in _boxes(data, stsd[0] + 8, stsd[1]):
        codec = kind.decode("latin-1")
        if codec not in H264 + MPEG4:
            raise _Refuse("unsupported_codec", codec.strip())
        width, height = struct.unpack_from(">HH", data, start + 24)
        _check(width, height, codec, max_side)
        found = (codec, width, height)
        if codec in H264:
            avcc = _child(data, start + 78, end, b"avcC")
            if avcc is None:
                raise _Bad("avc1 without avcC")
            s = avcc[0]
            length_size = (data[s + 4] & 3) + 1
            pos, n_sps = s + 6, data[s + 5] & 0x1F
            for _ in range(n_sps):
                size = struct.unpack_from(">H", data, pos)[0]
                _check(*sps_size(bytes(data[pos + 2:pos + 2 + size])), codec, max_side)
                pos += 2 + size
        else:
            esds = _child(data, start + 78, end, b"esds")
            if esds is None:
                raise _Bad("mp4v without esds")
            object_type, info = _esds_config(data, *esds)
            if object_type != MPEG4_VISUAL:
                raise _Refuse("unsupported_codec", f"mp4v/0x{object_type:02x}")
            for size in _vols(info):
                _check(*size, codec, max_side)
    if found is None:
        raise _Bad("no sample description")
    codec = found[0]
    for offset, size in _samples(data, stbl):  # parameter sets repeated inside the stream
        if offset + size > len(data):
            raise _Bad("sample outside the file")
        if codec in H264:
            pos, stop = offset, offset + size
            while pos + length_size <= stop:
                nal_size = int.from_bytes(data[pos:pos + length_size], "big")
                pos += length_size
                if nal_size and data[pos] & 0x1F == 7:
                    _check(*sps_size(bytes(data[pos:pos + nal_size])), codec, max_side)
                pos += nal_size
        else:
            for vol in _vols(bytes(data[offset:offset + size])):
                _check(*vol, codec, max_side)
    return found


def probe(data: Any, max_side: int = DEFAULT_MAX_SIDE) -> Probe:
    """What a decoder would be asked to do with ``data``; ``ok`` only for a note we may decode."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 16:
        return Probe(False, "corrupt_video", max_side=max_side)
    data = bytes(data)
    if data[4:8] not in _CONTAINERS:
        return Probe(False, "unsupported_container", max_side=max_side)
    try:
        top = list(_boxes(data, 0, len(data)))
        if any(kind == b"moof" for kind, _, _ in top):
            return Probe(False, "unsupported_container", max_side=max_side)
        moov = next(((s, e) for kind, s, e in top if kind == b"moov"), None)
        if moov is None:
            raise _Bad("no moov box")
        tracks = [t for t in (_video_track(data, (s, e), max_side) for kind, s, e in _boxes(data, *moov)
                              if kind == b"trak") if t is not None]
    except _Refuse as refused:
        return Probe(False, refused.reason, refused.codec, refused.width, refused.height, max_side)
    except (_Bad, struct.error, IndexError, ValueError, OverflowError, MemoryError):
        return Probe(False, "corrupt_video", max_side=max_side)
    if not tracks:
        return Probe(False, "corrupt_video", max_side=max_side)
    codec, width, height = tracks[0]
    return Probe(True, "ok", codec, width, height, max_side)
