"""What audio a byte string holds, from its magic bytes: servers' Content-Type and the requested
format are not to be trusted (protocols-more.md §1.1)."""

from __future__ import annotations

MIN_AUDIO_BYTES = 64  # below this no container holds a sample


def sniff_audio(data: bytes) -> str | None:
    """'wav', 'mp3', 'flac', 'ogg' (Opus or Vorbis), 'aac' (ADTS) or 'mp4'; None when none matches."""
    if len(data) < MIN_AUDIO_BYTES:
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:3] == b"ID3":
        return "mp3"
    if data[0] == 0xFF and data[1] & 0xF6 == 0xF0:  # ADTS sync word, layer bits 00
        return "aac"
    if data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:  # MPEG audio frame sync, layer I-III
        return "mp3"
    return None
