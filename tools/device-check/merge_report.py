#!/usr/bin/env python3
"""The device-check report from what finished (tools/device-check.sh runs it after every section).

Reads the script's working folder: build.json (what was built, for which architectures),
sections.tsv (each section's exit status, seconds and outcome), kit-SECTION.json (each kit
section's checks, rewritten by the kit after every check) and anchor.json (bench/torch_anchor.py),
and writes one JSON report. A section that crashed or was cut at its deadline becomes a failed
"(section)" check beside the checks it finished. --final also prints the summary, the
upframe/PyTorch ratios and what the kit does not cover, and exits 1 when a check failed.
"""
import argparse
import json
import os
import shutil
import sys

# What needs FFmpeg (libavcodec, libavutil's hwcontext), which the GPU machine lacks: the kit
# cannot exercise it there; test_cuda does, on a machine with FFmpeg and a GPU.
NOT_COVERED = [
    ("upload_to_cuda_frame / Frame::to_host per-plane copies (odd heights)",
     "FFmpeg frames; test_cuda DeviceFrameCopier.* and ColourCuda.DeviceFramesLikeNvdec*"),
    ("FFmpeg handed the runtime's primary context (create_cuda_hwdevice)",
     "libavutil's CUDA hwcontext; the decoder logs which context NVDEC used"),
    ("NVDEC through libavcodec (hwaccel cuda), DeviceFrameCopier",
     "libavcodec; the kit decodes the same streams through the Video Codec API instead"),
    ("4:4:4 / 12-bit device frames taking the host route in the upscaler",
     "FFmpeg frames; the predicate is unit-tested on the CPU (ColourDevicePath.*), the kit "
     "reports the route its NVDEC formats take"),
    ("DeviceFramePath (device frames upscaled and downloaded in flight), fp16 overflow fallback",
     "FFmpeg frames; test_cuda DeviceFramePath.*"),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pipeline_note():
    if shutil.which("ffmpeg") is None:
        return "full pipeline on the card: not timed, FFmpeg is not on this machine"
    return ("full pipeline on the card: not timed by the kit (it builds without FFmpeg); "
            "FFmpeg is here: run bench/ with an upframe build")


def comparisons(checks, anchor):
    """upframe/PyTorch frames per second for each case the anchor timed."""
    if not anchor:
        return []
    out = []
    for case in anchor.get("cases", []):
        key = f'{case["model"]} {case["width"]}x{case["height"]} {case["precision"]}'
        runs = [c for c in checks if c["section"] == "throughput" and c["status"] == "pass"
                and c["name"].startswith(key + " ") and "fps" in c.get("figures", {})]
        if not runs or not case.get("fps"):
            continue
        one = [c["figures"]["fps"] for c in runs if c["figures"].get("streams") == 1]
        best = max(c["figures"]["fps"] for c in runs)
        out.append({
            "case": key,
            "pytorch_fps": case["fps"],
            "upframe_fps_1_stream": one[0] if one else None,
            "upframe_fps_best": best,
            "ratio_1_stream": one[0] / case["fps"] if one else None,
            "ratio_best": best / case["fps"],
        })
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--final", action="store_true")
    args = parser.parse_args()

    build = load(os.path.join(args.work, "build.json"))
    sections = []
    tsv = os.path.join(args.work, "sections.tsv")
    if os.path.exists(tsv):
        with open(tsv) as f:
            for line in f:
                name, rc, seconds, outcome = line.rstrip("\n").split("\t")
                sections.append({"name": name, "exit": int(rc), "seconds": int(seconds),
                                 "outcome": outcome})

    device, dry_run, checks = None, None, []
    if os.path.exists(os.path.join(args.work, "bundle.fail")):
        checks.append({"section": "bundle", "name": "size", "status": "fail",
                       "detail": "what travels is over the 64 MiB a device call carries"})
    if build and build.get("build_failed"):
        checks.append({"section": "build", "name": "kit", "status": "fail",
                       "detail": "the kit did not build here; kit run: " + build.get("kit", "")})
    for s in sections:
        name = s["name"]
        if name == "anchor":
            part = load(os.path.join(args.work, "anchor.json"))
            if part:
                for case in part.get("cases", []):
                    checks.append({"section": "anchor",
                                   "name": f'{case["model"]} {case["width"]}x{case["height"]} '
                                           f'{case["precision"]} PyTorch',
                                   "status": "pass",
                                   "detail": f'{case["fps"]:.4g} frames/s ({part.get("device")}, '
                                             f'PyTorch {part.get("torch")}, eager, channels-last)',
                                   "figures": {"fps": case["fps"]}})
        else:
            part = load(os.path.join(args.work, f"kit-{name}.json"))
            if part:
                checks.extend(part.get("checks", []))
                if device is None or name == "device":
                    device = part.get("device")
                dry_run = part.get("dry_run")
        outcome = s["outcome"]
        if outcome == "ok" or (s["exit"] == 1 and name != "anchor"):
            continue  # the kit's own failed checks are in its report; the anchor has none
        status = "skip" if outcome.startswith("skipped") else "fail"
        checks.append({"section": name, "name": "(section)", "status": status,
                       "detail": f'{outcome} after {s["seconds"]} s; the checks it finished '
                                 "before are kept"})

    anchor = load(os.path.join(args.work, "anchor.json"))
    ratios = comparisons(checks, anchor)
    summary = {k: sum(1 for c in checks if c["status"] == k) for k in ("pass", "fail", "skip")}
    report = {
        "tool": "tools/device-check.sh",
        "dry_run": dry_run,
        "device": device,
        "build": build,
        "sections": sections,
        "summary": summary,
        "checks": checks,
        "upframe_vs_pytorch": ratios,
        "not_covered": [{"what": w, "why": why} for w, why in NOT_COVERED] +
                       [{"what": pipeline_note(), "why": "needs FFmpeg"}],
    }
    temporary = args.out + ".tmp"
    with open(temporary, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(temporary, args.out)

    if not args.final:
        return 0
    if build:
        print(f'build: {build.get("code")}, kit {build.get("kit")}, cuDNN header '
              f'{build.get("cudnn_include")}, library {build.get("cudnn_library")}')
    for s in sections:
        print(f'section {s["name"]:<12} {s["outcome"]} ({s["seconds"]} s)')
    for r in ratios:
        one = f'{r["ratio_1_stream"]:.3g}' if r["ratio_1_stream"] is not None else "n/a"
        print(f'upframe/PyTorch {r["case"]}: {one} (1 stream), {r["ratio_best"]:.3g} (best of '
              f'the stream counts); PyTorch {r["pytorch_fps"]:.4g} frames/s')
    for item in report["not_covered"]:
        print(f'not covered: {item["what"]} ({item["why"]})')
    print(f'summary: {summary["pass"]} passed, {summary["fail"]} failed, {summary["skip"]} '
          f'skipped; report {args.out}')
    return 1 if summary["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
