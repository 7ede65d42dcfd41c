#!/usr/bin/env python3
"""PyTorch beside upframe: the shipped models as PyTorch modules, timed on the same shapes.

The two architectures are written here from their published descriptions (Real-ESRGAN's
SRVGGNetCompact: a plain stack of 3x3 convolutions with PReLU, a pixel shuffle and the input
upsampled by nearest neighbour added; ESRGAN's RRDBNet: residual-in-residual dense blocks, two
nearest x2 upsamplings) and load the weights shipped in ncnn's format (models/*.bin, no
download), in the order the .param lists the layers. No code of theirs is copied.

  torch_anchor.py --device cuda --json FILE   time eager fp16, channels-last, batch 1, on the
                                              shapes of the device-check kit's throughput section
                                              (animevideov3 x2 and x4 at 480x270 and 1920x1080)
  torch_anchor.py --check-golden              fp32 on the CPU against tests/golden (>= 50 dB,
                                              <= 2 levels); exit 1 when one falls short
  torch_anchor.py --device cpu --sizes 48x27  the timing path on the CPU (fp32), small shapes

tools/device-check.sh runs the first on the card (section "anchor") and prints upframe/PyTorch
per case; tests/device_kit runs the second (ctest DeviceKit.TorchAnchorMatchesGolden).
"""
import argparse
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FP16_TAG = 0x01306B47


# --- the ncnn files --------------------------------------------------------------------------

def read_param(path):
    """Layers of an ncnn .param: (type, name, inputs, outputs, {key: value string})."""
    with open(path) as f:
        lines = f.read().split("\n")
    if lines[0].strip() != "7767517":
        raise ValueError(f"{path}: not an ncnn text .param")
    layers = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        inputs = parts[4:4 + n_in]
        outputs = parts[4 + n_in:4 + n_in + n_out]
        params = {}
        for item in parts[4 + n_in + n_out:]:
            key, value = item.split("=", 1)
            params[int(key)] = value
        layers.append((kind, name, inputs, outputs, params))
    return layers


class WeightReader:
    """ncnn ModelBin: flagged arrays (fp16 or fp32 weights) and raw fp32 arrays (bias, slopes)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        self.pos = 0

    def flagged(self, count):
        (tag,) = struct.unpack_from("<I", self.data, self.pos)
        self.pos += 4
        if tag == FP16_TAG:
            values = np.frombuffer(self.data, np.float16, count, self.pos).astype(np.float32)
            self.pos += (count * 2 + 3) // 4 * 4
            return values
        if tag == 0:
            return self.raw(count)
        raise ValueError(f"weights stored with flag {tag:#x} are not read here")

    def raw(self, count):
        values = np.frombuffer(self.data, np.float32, count, self.pos).copy()
        self.pos += count * 4
        return values


def load_layers(param_path):
    """The convolutions and PReLUs of a model, in .param order, with their weights."""
    reader = WeightReader(os.path.splitext(param_path)[0] + ".bin")
    convs, prelus = [], []
    for kind, name, _, _, p in read_param(param_path):
        if kind == "Convolution":
            out_ch, k, size = int(p[0]), int(p.get(1, 1)), int(p[6])
            weight = reader.flagged(size).reshape(out_ch, size // (out_ch * k * k), k, k)
            bias = reader.raw(out_ch) if int(p.get(5, 0)) else None
            convs.append((name, weight, bias))
        elif kind == "PReLU":
            prelus.append((name, reader.raw(int(p[0]))))
        elif kind in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            continue
        else:
            raise ValueError(f"{param_path}: layer type {kind} is not expected in these models")
    if reader.pos != len(reader.data):
        raise ValueError(f"{param_path}: {len(reader.data) - reader.pos} bytes left over")
    return convs, prelus


def set_conv(module, layer):
    name, weight, bias = layer
    if tuple(module.weight.shape) != weight.shape:
        raise ValueError(f"{name}: weights {weight.shape}, the module wants "
                         f"{tuple(module.weight.shape)}")
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight))
        module.bias.copy_(torch.from_numpy(bias))


# --- the architectures -----------------------------------------------------------------------

class CompactVgg(nn.Module):
    """SRVGGNetCompact: conv + PReLU, `body` x (conv + PReLU), conv to 3 * scale^2 channels,
    pixel shuffle, plus the input upsampled (nearest). The shipped x2 and x3 models are the x4
    network resized by `resize` (bicubic, 0.5 or 0.75) at the end."""

    def __init__(self, body, scale, resize=None, features=64):
        super().__init__()
        self.scale = scale
        self.resize = resize
        self.convs = nn.ModuleList([nn.Conv2d(3, features, 3, padding=1)] +
                                   [nn.Conv2d(features, features, 3, padding=1)
                                    for _ in range(body)] +
                                   [nn.Conv2d(features, 3 * scale * scale, 3, padding=1)])
        self.acts = nn.ModuleList([nn.PReLU(features) for _ in range(body + 1)])

    def forward(self, x):
        y = x
        for conv, act in zip(self.convs, self.acts):
            y = act(conv(y))
        y = F.pixel_shuffle(self.convs[-1](y), self.scale)
        y = y + F.interpolate(x, scale_factor=self.scale, mode="nearest")
        if self.resize:
            y = F.interpolate(y, scale_factor=self.resize, mode="bicubic", align_corners=False)
        return y

    @staticmethod
    def from_ncnn(param_path):
        convs, prelus = load_layers(param_path)
        layers = read_param(param_path)
        shuffle = [int(p[0]) for kind, _, _, _, p in layers if kind == "PixelShuffle"]
        # The last Interp, when it is the bicubic one (type 3) after the addition.
        resize = [float(p[1]) for kind, _, _, _, p in layers if kind == "Interp" and p[0] == "3"]
        model = CompactVgg(len(convs) - 2, shuffle[0], resize[0] if resize else None)
        for module, layer in zip(model.convs, convs):
            set_conv(module, layer)
        for module, (_, slope) in zip(model.acts, prelus):
            with torch.no_grad():
                module.weight.copy_(torch.from_numpy(slope))
        return model


class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each fed every earlier output (concatenated); leaky ReLU 0.2 after
    the first four; the result scaled by 0.2 and added to the input."""

    def __init__(self, features, growth):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(features + i * growth,
                                              growth if i < 4 else features, 3, padding=1)
                                    for i in range(5)])

    def forward(self, x):
        outputs = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(outputs, 1))
            if i < 4:
                outputs.append(F.leaky_relu(y, 0.2))
        return y * 0.2 + x


class ResidualDenseBlocks(nn.Module):
    """Three dense blocks in a row, the result scaled by 0.2 and added to the input."""

    def __init__(self, features, growth):
        super().__init__()
        self.blocks = nn.Sequential(*[DenseBlock(features, growth) for _ in range(3)])

    def forward(self, x):
        return self.blocks(x) * 0.2 + x


class Rrdb(nn.Module):
    """RRDBNet (x4): first conv, `count` residual-in-residual blocks and a conv added to it, two
    nearest x2 upsamplings each followed by conv + leaky ReLU, conv + leaky ReLU, last conv."""

    def __init__(self, count, features=64, growth=32):
        super().__init__()
        self.first = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.Sequential(*[ResidualDenseBlocks(features, growth) for _ in range(count)])
        self.body_conv = nn.Conv2d(features, features, 3, padding=1)
        self.up1 = nn.Conv2d(features, features, 3, padding=1)
        self.up2 = nn.Conv2d(features, features, 3, padding=1)
        self.hr = nn.Conv2d(features, features, 3, padding=1)
        self.last = nn.Conv2d(features, 3, 3, padding=1)

    def forward(self, x):
        feat = self.first(x)
        feat = feat + self.body_conv(self.body(feat))
        feat = F.leaky_relu(self.up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.last(F.leaky_relu(self.hr(feat), 0.2))

    def ordered_convs(self):
        yield self.first
        for rrdb in self.body:
            for block in rrdb.blocks:
                yield from block.convs
        yield from (self.body_conv, self.up1, self.up2, self.hr, self.last)

    @staticmethod
    def from_ncnn(param_path):
        convs, _ = load_layers(param_path)
        if (len(convs) - 6) % 15:
            raise ValueError(f"{param_path}: {len(convs)} convolutions are not an RRDBNet's")
        model = Rrdb((len(convs) - 6) // 15)
        for module, layer in zip(model.ordered_convs(), convs):
            set_conv(module, layer)
        return model


def load_model(source, stem):
    if stem.startswith("realesr-animevideov3-x"):
        return CompactVgg.from_ncnn(os.path.join(source, "models", stem + ".param"))
    if stem == "realesrgan-x4plus-anime":
        return Rrdb.from_ncnn(os.path.join(source, "tests", "models", stem + ".param"))
    raise ValueError("unknown model " + stem)


# --- images ----------------------------------------------------------------------------------

def read_png_rgb8(path):
    """An 8-bit RGB or RGBA, non-interlaced PNG as an h x w x 3 uint8 array (zlib and numpy
    alone: the tests' images are such)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(path + ": not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(path + ": only 8-bit RGB/RGBA non-interlaced PNGs are read here")
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    out = np.zeros((height, stride), np.int32)
    previous = np.zeros(stride, np.int32)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        row = np.zeros(stride, np.int32)
        if kind in (0, 2):
            row = (line + (previous if kind == 2 else 0)) & 255
        else:
            for x in range(stride):
                left = row[x - channels] if x >= channels else 0
                up = previous[x]
                if kind == 1:
                    row[x] = (line[x] + left) & 255
                elif kind == 3:
                    row[x] = (line[x] + (left + up) // 2) & 255
                else:
                    upper_left = previous[x - channels] if x >= channels else 0
                    p = left + up - upper_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                    row[x] = (line[x] + pred) & 255
        out[y] = row
        previous = row
    return out.reshape(height, width, channels)[:, :, :3].astype(np.uint8)


# --- the two modes ---------------------------------------------------------------------------

GOLDEN = [("mandel_256x144", "realesr-animevideov3-x2", "animevideov3-x2"),
          ("testsrc2_160x90", "realesr-animevideov3-x4", "animevideov3-x4"),
          ("testsrc2_160x90", "realesrgan-x4plus-anime", "x4plus-anime")]


def check_golden(source):
    torch.set_grad_enabled(False)
    ok = True
    for image, stem, suffix in GOLDEN:
        folder = os.path.join(source, "tests", "golden")
        rgb = read_png_rgb8(os.path.join(folder, image + ".png"))
        want = read_png_rgb8(os.path.join(folder, f"{image}.{suffix}.png")).astype(np.int32)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        y = load_model(source, stem).eval()(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        got = np.rint(y * 255).astype(np.int32)
        if got.shape != want.shape:
            print(f"FAIL {stem} on {image}: {got.shape} but the golden is {want.shape}")
            ok = False
            continue
        mse = float(np.mean((got - want) ** 2))
        psnr = 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)
        worst = int(np.abs(got - want).max())
        passed = psnr >= 50 and worst <= 2
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'} {stem} on {image}: PSNR {psnr:.2f} dB, max "
              f"{worst} levels (needs >= 50 dB and <= 2)")
    return 0 if ok else 1


# The device-check kit's throughput shapes (tools/device-check/device_check.cpp).
CASES = [(stem, w, h) for stem in ("realesr-animevideov3-x2", "realesr-animevideov3-x4")
         for (w, h) in ((480, 270), (1920, 1080))]


def time_cases(source, device, seconds, out_path, sizes=None):
    torch.set_grad_enabled(False)
    torch.backends.cudnn.benchmark = True
    dtype = torch.float16 if device == "cuda" else torch.float32
    results = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
               "torch": torch.__version__,
               "cudnn": torch.backends.cudnn.version() if device == "cuda" else None,
               "mode": f"eager, {'fp16' if dtype == torch.float16 else 'fp32'}, channels-last, "
                       "batch 1" + (", cudnn.benchmark" if device == "cuda" else ""),
               "cases": []}

    def write():
        if out_path:
            with open(out_path + ".tmp", "w") as f:
                json.dump(results, f, indent=1)
            os.replace(out_path + ".tmp", out_path)

    cases = CASES if not sizes else [(stem, w, h) for stem in ("realesr-animevideov3-x2",
                                                               "realesr-animevideov3-x4")
                                     for (w, h) in sizes]
    for stem, w, h in cases:
        model = load_model(source, stem).eval().to(device=device, dtype=dtype,
                                                   memory_format=torch.channels_last)
        x = torch.rand(1, 3, h, w, device=device, dtype=dtype).contiguous(
            memory_format=torch.channels_last)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for _ in range(3):  # warm-up: cuDNN's benchmark picks its algorithms here
            model(x)
        sync()
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(x)
            sync()
            frames += 1
        fps = frames / (time.perf_counter() - start)
        precision = "fp16" if dtype == torch.float16 else "fp32"
        results["cases"].append({"model": stem, "width": w, "height": h,
                                 "precision": precision, "fps": fps})
        print(f"{stem} {w}x{h} {precision}: {fps:.4g} frames/s (PyTorch {torch.__version__}, "
              f"{results['device']})", flush=True)
        write()  # after every case: a cut run keeps what finished
        del model, x
        if device == "cuda":
            torch.cuda.empty_cache()
    write()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json")
    parser.add_argument("--sizes", help="WxH,WxH instead of the kit's shapes (a quick CPU run)")
    parser.add_argument("--check-golden", action="store_true")
    args = parser.parse_args()
    if args.check_golden:
        return check_golden(args.source)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")] if args.sizes \
        else None
    return time_cases(args.source, args.device, args.seconds, args.json, sizes)


if __name__ == "__main__":
    sys.exit(main())
