"""Speak one line with libespeak-ng in a process of its own; run as a script, not imported.

The library carries state from one synthesis to the next (its flutter and waveform phases), so
the same line spoken twice in one process comes out a few samples different. A fresh process
per line makes the embedded speech byte-for-byte reproducible; it imports only ctypes and json
(the caller passes the library's paths, so it runs without site-packages) and starts in a few ms.

stdin: JSON {"library", "data", "text", "voice", "pitch", "rate"}. stdout: the sample rate as 4 bytes little-endian,
then 16-bit mono samples. Errors: exit status 2 (bad request) or 3 (unknown voice), reason on stderr.
"""

import ctypes
import json
import sys

AUDIO_OUTPUT_SYNCHRONOUS, INIT_DONT_EXIT = 2, 0x8000
POS_CHARACTER, CHARS_UTF8, ENDPAUSE = 1, 1, 0x1000
RATE, PITCH = 1, 3
EE_OK = 0
BAD_REQUEST, UNKNOWN_VOICE = 2, 3


def fail(status: int, reason: str) -> None:
    sys.stderr.write(reason)
    sys.exit(status)


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    data = request["data"]
    lib = ctypes.CDLL(request["library"])
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), INIT_DONT_EXIT)
    if rate <= 0:
        fail(BAD_REQUEST, f"espeak_Initialize failed with data at {data}")
    chunks = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def collect(wav, count, _events):
        if wav and count > 0:
            chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != EE_OK:
        fail(UNKNOWN_VOICE, request["voice"])
    lib.espeak_SetParameter(RATE, int(request["rate"]), 0)
    lib.espeak_SetParameter(PITCH, int(request["pitch"]), 0)
    text = request["text"].encode("utf-8")
    status = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE, None, None)
    lib.espeak_Synchronize()
    if status != EE_OK:
        fail(BAD_REQUEST, f"espeak_Synth failed with status {status}")
    sys.stdout.buffer.write(rate.to_bytes(4, "little") + b"".join(chunks))


if __name__ == "__main__":
    main()
