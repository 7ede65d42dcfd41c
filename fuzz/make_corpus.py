#!/usr/bin/env python3
"""Makes the seed corpora in fuzz/corpus/ (committed; rerun after a model format change).

nn_model: the shipped and test models with their channel counts divided by 32 (so each
.bin is a few KB) and weights that match, in the fuzz input layout of fuzz_nn_model.cpp
(.param text, a line "@bin", the .bin bytes); plus fp16 and quantized-table weight
variants and two truncated ones. decoder: tiny clips from the ffmpeg CLI.
"""
import os
import random
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MARKER = b"@bin\n"

MODELS = [
    "models/realesr-animevideov3-x2.param",
    "models/realesr-animevideov3-x4.param",
    "tests/models/realcugan/up2x-no-denoise.param",
    "tests/models/realesrgan-x4plus-anime.param",
]


def shrink(channels):
    return channels // 32 if channels >= 32 and channels % 32 == 0 else channels


def params_of(tokens):
    return {t.split("=", 1)[0]: t.split("=", 1)[1] for t in tokens if "=" in t}


def shrunk_model(param_text, storage, rng):
    """The .param with fewer channels and a matching .bin (weights stored as `storage`)."""
    lines = param_text.splitlines()
    out_lines = lines[:2]
    weights = bytearray()

    def flagged(count):
        values = [rng.uniform(-0.1, 0.1) for _ in range(count)]
        if storage == "fp16":
            data = struct.pack("<I", 0x01306B47) + struct.pack("<%de" % count, *values)
            return data + b"\0" * (-len(data) % 4)
        if storage == "table":
            table = [i / 1024.0 - 0.125 for i in range(256)]
            data = struct.pack("<I", 0x01020304) + struct.pack("<256f", *table)
            data += bytes(rng.randrange(256) for _ in range(count))
            return data + b"\0" * (-len(data) % 4)
        return struct.pack("<I", 0) + struct.pack("<%df" % count, *values)

    def raw(count):
        return struct.pack("<%df" % count, *[rng.uniform(0.0, 0.2) for _ in range(count)])

    for line in lines[2:]:
        tokens = line.split()
        if not tokens:
            continue
        kind = tokens[0]
        n_in, n_out = int(tokens[2]), int(tokens[3])
        head = tokens[: 4 + n_in + n_out]
        p = params_of(tokens[4 + n_in + n_out :])
        if kind in ("Convolution", "Deconvolution"):
            n, k = int(p["0"]), int(p["1"])
            kh = int(p.get("11", k))
            in_c = int(p["6"]) // (n * k * kh)
            p["0"] = str(shrink(n))
            p["6"] = str(shrink(n) * shrink(in_c) * k * kh)
            weights += flagged(int(p["6"]))
            if p.get("5", "0") != "0":
                weights += raw(shrink(n))
        elif kind == "InnerProduct":
            n = int(p["0"])
            in_c = int(p["2"]) // n
            p["0"] = str(shrink(n))
            p["2"] = str(shrink(n) * shrink(in_c))
            weights += flagged(int(p["2"]))
            if p.get("1", "0") != "0":
                weights += raw(shrink(n))
        elif kind == "PReLU":
            p["0"] = str(shrink(int(p["0"])))
            weights += raw(int(p["0"]))
        out_lines.append(" ".join(head + ["%s=%s" % kv for kv in p.items()]))
    return ("\n".join(out_lines) + "\n").encode(), bytes(weights)


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def nn_corpus():
    folder = os.path.join(CORPUS, "nn_model")
    rng = random.Random(1)
    for path in MODELS:
        stem = os.path.splitext(os.path.basename(path))[0]
        text = open(os.path.join(ROOT, path)).read()
        for storage in ("fp32", "fp16", "table"):
            if storage != "fp32" and "animevideov3-x2" not in stem:
                continue
            param, weights = shrunk_model(text, storage, rng)
            write(folder, "%s-%s" % (stem, storage), param + MARKER + weights)
        if "x2" in stem:
            param, weights = shrunk_model(text, "fp32", rng)
            write(folder, stem + "-short-bin", param + MARKER + weights[: len(weights) // 2])
            write(folder, stem + "-param-only", param)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def decoder_corpus():
    folder = os.path.join(CORPUS, "decoder")
    os.makedirs(folder, exist_ok=True)
    src = ["-f", "lavfi", "-i", "testsrc2=size=32x24:rate=10", "-frames:v", "6"]
    clips = {
        "h264.mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
        "h264.mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
        "hevc10.mkv": ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                       "-x265-params", "log-level=error"],
        "mpeg4.avi": ["-c:v", "mpeg4"],
        "vp9.webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
        "ffv1.mkv": ["-c:v", "ffv1"],
        "mjpeg.mov": ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"],
        "h264.ts": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
        "gif.gif": [],
    }
    for name, codec in clips.items():
        ffmpeg(*src, *codec, os.path.join(folder, name))
    one = ["-f", "lavfi", "-i", "testsrc2=size=32x24", "-frames:v", "1"]
    ffmpeg(*one, os.path.join(folder, "still.png"))
    ffmpeg(*one, os.path.join(folder, "still.jpg"))
    ffmpeg(*one, os.path.join(folder, "still.webp"))
    # A clip with audio beside the video (the decoder must skip the other stream).
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=0.6", "-frames:v", "6", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "aac", "-shortest",
           os.path.join(folder, "h264-aac.mp4"))


if __name__ == "__main__":
    nn_corpus()
    decoder_corpus()
    total = sum(os.path.getsize(os.path.join(d, f))
                for d, _, files in os.walk(CORPUS) for f in files)
    print("corpus: %d bytes" % total, file=sys.stderr)
