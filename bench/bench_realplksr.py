#!/usr/bin/python3
"""RealPLKSR at its published size (64 features, 28 blocks, 17x17 kernel, x4; GroupNorm and
LayerNorm variants, random weights) on a 128x72 crop of tests/golden/testsrc2_160x90.png:
PyTorch fp32 against `upframe --model FILE.pth` on the CPU (fp32 and bf16, untiled), run
alternately in one process so load on a shared machine hits all alike; upframe's output
against PyTorch's (PSNR).

Usage: /usr/bin/python3 bench/bench_realplksr.py [iterations] [threads]
(Debian's python3-torch; build/upframe built first). upframe's time is the "upscale" time it
prints for one image, which includes building its primitives; PyTorch's is one forward pass
after a warm-up pass.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_model_fixtures as fixtures  # noqa: E402


def psnr(a_path, b_path):
    a = np.asarray(Image.open(a_path)).astype(np.float64)
    b = np.asarray(Image.open(b_path)).astype(np.float64)
    mse = ((a - b) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def upframe_seconds(model, image, out, precision, threads):
    # OMP_NUM_THREADS: oneDNN's and the loops' threads, as torch.set_num_threads for PyTorch.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    run = subprocess.run([os.path.join(ROOT, "build", "upframe"), image, "-o", out, "-y", "--model",
                          model, "--device", "cpu", "--precision", precision, "--tile", "0"],
                         capture_output=True, text=True, check=True, env=env)
    return float(re.search(r"upscale ([0-9.]+)s", run.stderr + run.stdout).group(1))


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count()
    torch.set_num_threads(threads)
    work = tempfile.mkdtemp(prefix="bench_realplksr_")
    image = fixtures.load_image("testsrc2_160x90.png", (16, 9, 144, 81))
    image_path = os.path.join(work, "in.png")
    fixtures.save_reference(image, image_path)
    print("RealPLKSR 64 features, 28 blocks, 17x17 kernel, x4, 128x72 input, %d threads" % threads)
    print("| variant | PyTorch fp32 | upframe fp32 | upframe bf16 | fp32 / PyTorch | bf16 / PyTorch "
          "| PSNR fp32 | PSNR bf16 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, layer_norm in [("GroupNorm", False), ("LayerNorm", True)]:
        model = fixtures.randomise_realplksr(
            fixtures.RealPLKSR(64, 28, 4, 17, 16, layer_norm=layer_norm), 1).eval()
        model_path = os.path.join(work, "realplksr-%s.pth" % name)
        torch.save({"params_ema": model.state_dict()}, model_path)
        ref_path = os.path.join(work, "ref-%s.png" % name)
        times = {"torch": [], "fp32": [], "bf16": []}
        with torch.no_grad():
            fixtures.save_reference(model(image), ref_path)
            for _ in range(iterations):
                start = time.perf_counter()
                model(image)
                times["torch"].append(time.perf_counter() - start)
                for precision in ("fp32", "bf16"):
                    out = os.path.join(work, "%s-%s.png" % (name, precision))
                    times[precision].append(upframe_seconds(model_path, image_path, out, precision,
                                                            threads))
        med = {k: statistics.median(v) for k, v in times.items()}
        print("| %s | %.2f s | %.2f s | %.2f s | %.2f | %.2f | %.1f dB | %.1f dB |" % (
            name, med["torch"], med["fp32"], med["bf16"], med["fp32"] / med["torch"],
            med["bf16"] / med["torch"], psnr(os.path.join(work, name + "-fp32.png"), ref_path),
            psnr(os.path.join(work, name + "-bf16.png"), ref_path)))
        print("  runs:", {k: ["%.2f" % t for t in v] for k, v in times.items()})


if __name__ == "__main__":
    main()
