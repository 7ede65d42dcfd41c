#!/usr/bin/python3
"""Writes the weight-file fixtures of tests/weights into tests/models/weights/.

Run with Debian's python3-torch (`/usr/bin/python3 tools/make_weight_fixtures.py`); CI only
reads the files it writes. Each file holds small random tensors covering what the readers must
handle: fp32/fp16/bf16 storages, a non-contiguous view, two views of one storage, a Parameter,
wrapper keys, the `module.` prefix, the zip and the legacy layouts, safetensors; and two
pickles that would run `os.system` if a real unpickler loaded them. expected.json holds every
tensor's shape, stored type and values (as float32) for the tests to compare against.
"""
import collections
import json
import os
import struct
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "weights")
# The side effect the malicious pickles would have; the tests check it never appears.
EVIL_MARKER = "/tmp/upframe-evil-pickle-ran"


def tensors():
    torch.manual_seed(1234)
    base = torch.randn(3, 4)
    shared = torch.randn(10)
    d = collections.OrderedDict()
    d["conv_first.weight"] = torch.nn.Parameter(torch.randn(4, 3, 3, 3))
    d["conv_first.bias"] = torch.randn(4)
    d["body.0.weight"] = torch.randn(2, 5).half()
    d["body.1.weight"] = torch.randn(3, 2).bfloat16()
    d["transposed"] = base.t()  # strides (1, 4): not contiguous
    d["shared_head"] = shared[:4]
    d["shared_tail"] = shared[6:]  # storage offset 6, same storage as shared_head
    d["double"] = torch.randn(2, 2, dtype=torch.float64)
    d["scalar"] = torch.tensor(0.5)
    return d


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + EVIL_MARKER,))


def dtype_name(t):
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
            torch.float64: "fp64"}[t.dtype]


def expected_entry(d):
    return {k: {"shape": list(v.shape), "dtype": dtype_name(v),
                "values": [float(x) for x in v.detach().float().reshape(-1).tolist()]}
            for k, v in d.items()}


def write_safetensors(path, d):
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.float64: "F64"}
    header, blobs, offset = {}, [], 0
    for k, v in d.items():
        v = v.detach().contiguous()
        raw = v.view(torch.int16).numpy().tobytes() if v.dtype == torch.bfloat16 else v.numpy().tobytes()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape),
                     "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    os.makedirs(OUT, exist_ok=True)
    d = tensors()
    expected = {}
    # Real-ESRGAN's files: {'params_ema': ...} (RRDB) or {'params': ...}; a training checkpoint
    # also carries other keys, which are skipped.
    wrapped = {"params": {k: v * 2 for k, v in d.items() if v.dtype == torch.float32},
               "params_ema": d, "iter": 1000}
    torch.save(wrapped, os.path.join(OUT, "wrapped_zip.pth"))
    torch.save(wrapped, os.path.join(OUT, "wrapped_legacy.pth"), _use_new_zipfile_serialization=False)
    expected["wrapped_zip.pth"] = expected["wrapped_legacy.pth"] = {
        "wrapper": "params_ema", "tensors": expected_entry(d)}
    module = collections.OrderedDict(("module." + k, v) for k, v in d.items())
    torch.save({"state_dict": module}, os.path.join(OUT, "module_prefix.pth"))
    expected["module_prefix.pth"] = {"wrapper": "state_dict", "tensors": expected_entry(d)}
    write_safetensors(os.path.join(OUT, "plain.safetensors"), d)
    expected["plain.safetensors"] = {"wrapper": "", "tensors": expected_entry(d)}
    torch.save({"params": d, "payload": Evil()}, os.path.join(OUT, "evil_zip.pth"))
    torch.save({"params": d, "payload": Evil()}, os.path.join(OUT, "evil_legacy.pth"),
               _use_new_zipfile_serialization=False)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=0, sort_keys=True)
    print("wrote", OUT, "torch", torch.__version__)


if __name__ == "__main__":
    sys.exit(main())
