"""Scenes' AAC audio joined by stream copy without drift.

The concat demuxer alone lets audio slip: every scene's AAC stream starts with a priming
packet (the encoder's 1024-sample delay, hidden by that file's edit list) and ends on a whole
1024-sample packet, so each join adds 20-40 ms and a long episode ends up visibly out of
sync. Here the packets are laid on the episode's own timeline instead: each scene keeps its
priming packet, which gives its first real packet the overlap it decodes against (so the
scene's start decodes exactly), and each scene contributes as many whole packets as keep its
start on its video start, to within half a packet (±10.7 ms at 48 kHz, never accumulating).
What a scene loses or gains at its end is inside the short fade every scene mix ends with
(`mix.EDGE_FADE`), so a join neither clicks nor cuts speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.media.ffmpeg import MediaError, run_ffmpeg

SAMPLES_PER_PACKET = 1024
PRIMING_PACKETS = 1  # ffmpeg's AAC encoder: initial_padding = 1024 samples
ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@dataclass(frozen=True)
class AacTrack:
    packets: tuple[bytes, ...]  # ADTS frames, priming first
    sample_rate: int
    channels: int


def parse_adts(data: bytes, source: Path) -> AacTrack:
    packets, at, layout = [], 0, None
    while at < len(data):
        header = data[at: at + 7]
        if len(header) < 7 or header[0] != 0xFF or header[1] & 0xF6 != 0xF0:
            raise MediaError(source, f"AAC stream is not ADTS at byte {at}")
        length = ((header[3] & 0x03) << 11) | (header[4] << 3) | (header[5] >> 5)
        if header[6] & 0x03:
            raise MediaError(source, "AAC packets with several raw data blocks cannot be spliced")
        rate_index, channels = (header[2] >> 2) & 0x0F, ((header[2] & 0x01) << 2) | (header[3] >> 6)
        if layout is None:
            layout = (ADTS_RATES[rate_index], channels)
        packets.append(data[at: at + length])
        at += length
    if layout is None or len(packets) <= PRIMING_PACKETS:
        raise MediaError(source, "has no AAC audio packets")
    return AacTrack(tuple(packets), *layout)


def aac_track(scene: Path) -> AacTrack:
    """The scene's first audio stream as ADTS packets (stream copy: nothing is decoded)."""
    proc = run_ffmpeg(["-i", str(scene), "-map", "0:a:0", "-c", "copy", "-f", "adts", "pipe:1"], scene,
                      "cannot read the AAC audio")
    return parse_adts(proc.stdout, scene)


@dataclass(frozen=True)
class Splice:
    adts: bytes  # the episode's audio, priming first: mux it 1024 samples early
    sample_rate: int
    worst_offset: float  # seconds: the largest gap between a scene's audio start and its video start


def splice(scenes: Sequence[Path], tracks: Sequence[AacTrack], durations: Sequence[float]) -> Splice:
    """The scenes' audio (`aac_track` of each) on the episode timeline; `durations` are their videos'."""
    rate, channels = tracks[0].sample_rate, tracks[0].channels
    for scene, track in zip(scenes, tracks, strict=True):
        if (track.sample_rate, track.channels) != (rate, channels):
            raise MediaError(scene, f"audio is {track.sample_rate} Hz × {track.channels}, the first scene's is "
                                    f"{rate} Hz × {channels}")
    packets: list[bytes] = []
    position = -PRIMING_PACKETS * SAMPLES_PER_PACKET  # where the next packet's output lands, in samples
    goal, worst = 0, 0
    for index, (scene, track, duration) in enumerate(zip(scenes, tracks, durations, strict=True)):
        start = position + PRIMING_PACKETS * SAMPLES_PER_PACKET  # this scene's real first sample
        worst = max(worst, abs(start - goal))
        goal += round(duration * rate)
        # Whole packets up to where the next scene's priming packet must begin (the last scene runs to its end).
        reserve = PRIMING_PACKETS if index < len(scenes) - 1 else 0
        count = round((goal - position) / SAMPLES_PER_PACKET) - reserve
        if count > len(track.packets):
            raise MediaError(scene, f"has {len(track.packets)} audio packets, its {duration:.3f} s of video "
                                    f"need {count}")
        packets += track.packets[:count]
        position += count * SAMPLES_PER_PACKET
    return Splice(b"".join(packets), rate, worst / rate)
