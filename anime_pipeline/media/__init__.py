"""Media assembly: encoding, transitions, subtitles on a bundled ffmpeg; speech, music, the mix and the
episode container in their own modules.

Plain Python with no Dagster dependency; assets call these functions.
"""

from anime_pipeline.media.ffmpeg import (
    XFADE_TRANSITIONS,
    MediaError,
    MediaInfo,
    assemble_scene,
    decode_check,
    encode_clip,
    ffmpeg_exe,
    probe,
    iter_frames,
    read_frames,
    thumbnail,
)
from anime_pipeline.media.subtitles import Cue, format_srt, format_webvtt, parse_srt, write_srt

__all__ = [
    "XFADE_TRANSITIONS",
    "Cue",
    "MediaError",
    "MediaInfo",
    "assemble_scene",
    "decode_check",
    "encode_clip",
    "ffmpeg_exe",
    "format_srt",
    "format_webvtt",
    "parse_srt",
    "probe",
    "iter_frames",
    "read_frames",
    "thumbnail",
    "write_srt",
]
