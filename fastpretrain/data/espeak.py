"""Speech synthesised offline by eSpeak NG through ctypes. The library and its voice data come from
the ``espeakng-loader`` wheel (libespeak-ng 1.52 + espeak-ng-data, no system package needed; in the
``data`` extra). eSpeak is a formant synthesiser: real, intelligible speech, but robotic, and every
"speaker" is one of its voice variants, not a person."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

SAMPLE_RATE = 22050  # eSpeak NG's output rate
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the callback has every sample
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()  # the library holds one global synthesiser
_state: dict = {}


def espeak_available() -> bool:
    """Whether the ``espeakng-loader`` wheel is installed."""
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True


def _library():
    if "lib" not in _state:
        try:
            import espeakng_loader
        except ImportError as e:
            raise RuntimeError("speech synthesis needs the espeakng-loader wheel (libespeak-ng and its voices): "
                               "pip install espeakng-loader, or pip install 'fastpretrain[data]'") from e  # fmt: skip
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize: expected {SAMPLE_RATE} Hz output, got {rate}")
        chunks: list[np.ndarray] = []

        def collect(wav, n, events):
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
            return 0

        _state["callback"] = _CALLBACK(collect)  # kept alive as long as the library
        lib.espeak_SetSynthCallback(_state["callback"])
        _state["lib"], _state["chunks"] = lib, chunks
    return _state["lib"]


def synthesize(text: str, voice: str = "en-us", *, rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> np.ndarray:
    """int16 [N] samples at :data:`SAMPLE_RATE` of ``text`` spoken by eSpeak ``voice`` (a language,
    optionally ``+variant``, e.g. ``"en-us+f3"``), at ``rate`` words per minute (80-450), ``pitch``
    and ``pitch_range`` (0-100; 50 is the voice's own)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text: expected a non-empty string, got {text!r}")
    for name, value, low, high in (("rate", rate, 80, 450), ("pitch", pitch, 0, 100), ("pitch_range", pitch_range, 0, 100)):
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value!r}")
    with _lock:
        lib = _library()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"voice: eSpeak NG has no voice {voice!r} (e.g. 'en-us', 'en-us+f3', 'en-gb-scotland+m2')")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            lib.espeak_SetParameter(param, value, 0)
        chunks = _state["chunks"]
        chunks.clear()
        data = text.encode() + b"\0"
        if lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"espeak_Synth failed on {text!r}")
        lib.espeak_Synchronize()
        out = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        chunks.clear()
    return out


__all__ = ["SAMPLE_RATE", "espeak_available", "synthesize"]
