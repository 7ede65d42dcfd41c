#!/usr/bin/env python3
"""tools/device-check.sh's failure handling, on a kit built once (ctest fixture DeviceKit.Build).

Usage: dry_run_test.py CASE KIT_BUILD_DIR, CASE one of:
  build-failure  the build fails (test hook): exit 3; with --fallback the carried kit runs and
                 its checks are in the report; without, every section is reported not run
  crash          a section aborts (test hook): the report keeps the sections before it, names
                 the crash, and the sections after it still run; exit 1
  deadline       a section hangs (test hook): it is cut at its deadline and reported, the next
                 section runs, the run ends in seconds; exit 1
  no-device      a run meant for a GPU, where none is: the device probe fails (exit 1) and the
                 host halves show as skipped, not passed (skipped where a GPU is present)
  cudnn-root     the script takes cuDNN's header and library from one root: a $CUDNN_ROOT
                 holding both wins; one holding only the header is passed over
  user-models    the user_models section's host half: every model file of tests/models/pytorch
                 the CPU runs (less the shipped model's .pth) built from the ncnn text and weights
                 user_models.ref carries, its shape agreeing with the CPU output; a reference
                 whose scale is wrong fails, naming it
  report         merge_report.py alone (no kit): throughput and anchor figures give the
                 upframe/PyTorch ratio per case; what needs FFmpeg is listed as not covered
  anchor         bench/torch_anchor.py on the CPU: the shipped models in PyTorch match
                 tests/golden (fp32: >= 50 dB, <= 2 levels), and its timing path writes its JSON
                 (KIT_BUILD_DIR is then the python3 that has torch; exit 77 where none has)
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(SOURCE, "tools", "device-check.sh")


def run(args, env_extra, out):
    env = dict(os.environ)
    env.update(env_extra)
    start = time.monotonic()
    p = subprocess.run([SCRIPT, "--out", out] + args, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    seconds = time.monotonic() - start
    with open(os.path.join(out, "device-check.json")) as f:
        report = json.load(f)
    return p.returncode, report, p.stdout, seconds


def checks(report, section, status=None):
    return [c for c in report["checks"] if c["section"] == section
            and (status is None or c["status"] == status)]


def expect(condition, what, output):
    if not condition:
        print(output)
        print("FAILED: " + what)
        sys.exit(1)
    print("ok: " + what)


def read_refs(path):
    """A device-check reference file (ref_archive.hpp) as [(name, type, dims, bytes)]."""
    with open(path, "rb") as f:
        data = f.read()
    entries, at = [], 8
    while at < len(data):
        (size,) = struct.unpack_from("<Q", data, at)
        name = data[at + 8:at + 8 + size].decode()
        at += 8 + size
        kind = data[at]
        (ndims,) = struct.unpack_from("<Q", data, at + 1)
        dims = struct.unpack_from("<%dQ" % ndims, data, at + 9)
        at += 9 + 8 * ndims
        (size,) = struct.unpack_from("<Q", data, at)
        entries.append((name, kind, dims, data[at + 8:at + 8 + size]))
        at += 8 + size
    return data[:8], entries


def write_refs(path, magic, entries):
    with open(path, "wb") as f:
        f.write(magic)
        for name, kind, dims, values in entries:
            f.write(struct.pack("<Q", len(name)) + name.encode() + bytes([kind]))
            f.write(struct.pack("<Q", len(dims)) + struct.pack("<%dQ" % len(dims), *dims))
            f.write(struct.pack("<Q", len(values)) + values)


def main():
    case, kit_dir = sys.argv[1], os.path.abspath(sys.argv[2])
    kit = os.path.join(kit_dir, "upframe_device_check")
    out = tempfile.mkdtemp(prefix="device-kit-test-")
    try:
        if case == "build-failure":
            rc, report, log, _ = run(["--cpu-dry-run", "--build-dir", kit_dir, "--fallback", kit,
                                      "--sections", "device,colour"],
                                     {"UPFRAME_KIT_FORCE_BUILD_FAILURE": "1"}, out)
            expect(rc == 3, f"a failed build exits 3 (got {rc})", log)
            expect(report["build"]["build_failed"] is True, "the report says the build failed", log)
            expect(report["build"]["kit"].startswith("fallback"), "the fallback kit ran", log)
            expect(len(checks(report, "colour", "pass")) == 5,
                   "the fallback's colour checks are in the report", log)
            expect(len(checks(report, "build", "fail")) == 1, "the build is a failed check", log)
            rc, report, log, _ = run(["--cpu-dry-run", "--build-dir", kit_dir,
                                      "--sections", "device,colour"],
                                     {"UPFRAME_KIT_FORCE_BUILD_FAILURE": "1"}, out)
            expect(rc == 3, f"without a fallback, exit 3 too (got {rc})", log)
            expect(all("not run" in s["outcome"] for s in report["sections"]),
                   "every section reported as not run", log)
        elif case == "crash":
            rc, report, log, _ = run(["--cpu-dry-run", "--prebuilt", kit,
                                      "--sections", "device,colour,dedup,nvdec"],
                                     {"UPFRAME_KIT_TEST_CRASH": "dedup"}, out)
            expect(rc == 1, f"a crashed section fails the run (got {rc})", log)
            expect(len(checks(report, "colour", "pass")) == 5,
                   "the section before the crash is in the report", log)
            crashed = checks(report, "dedup", "fail")
            expect(len(crashed) == 1 and "crashed (signal 6)" in crashed[0]["detail"],
                   "the crash is reported with its signal", log)
            expect(len(checks(report, "nvdec", "pass")) == 4, "the section after it ran", log)
        elif case == "deadline":
            rc, report, log, seconds = run(["--cpu-dry-run", "--prebuilt", kit,
                                            "--sections", "device,colour,nvdec"],
                                           {"UPFRAME_KIT_TEST_SLEEP": "colour",
                                            "UPFRAME_KIT_SECTION_SECONDS": "3"}, out)
            expect(rc == 1, f"a section cut at its deadline fails the run (got {rc})", log)
            cut = checks(report, "colour", "fail")
            expect(len(cut) == 1 and "cut at its deadline of 3 s" in cut[0]["detail"],
                   "the hanging section is cut and reported", log)
            expect(len(checks(report, "nvdec", "pass")) == 4, "the next section ran", log)
            expect(seconds < 60, f"the run ended in {seconds:.0f} s, not at the hang's hour", log)
            expect("== colour (deadline 3 s" in log and "== nvdec: ok in" in log,
                   "each section's deadline and elapsed time printed", log)
        elif case == "no-device":
            if shutil.which("nvidia-smi") and subprocess.run(
                    ["nvidia-smi", "-L"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL).returncode == 0:
                print("a GPU is present: this case checks a machine without one")
                sys.exit(77)
            rc, report, log, _ = run(["--prebuilt", kit, "--sections", "device,colour"], {}, out)
            expect(rc == 1, f"no device on a real run fails it (got {rc})", log)
            probe = checks(report, "device")
            expect(len(probe) == 1 and probe[0]["status"] == "fail", "the device probe failed",
                   log)
            expect(len(checks(report, "colour", "skip")) == 5 and not checks(report, "colour",
                                                                              "pass"),
                   "the host halves show as skipped", log)
        elif case == "user-models":
            folder = os.path.join(SOURCE, "tests", "models", "pytorch")
            expected = sorted(f for f in os.listdir(folder)
                              if f.endswith((".pth", ".pt", ".ckpt", ".safetensors", ".onnx"))
                              and f not in ("unsupported-op.onnx", "unsupported-transpose.onnx",
                                            "realesr-animevideov3-x4.pth"))
            rc, report, log, _ = run(["--cpu-dry-run", "--prebuilt", kit,
                                      "--sections", "device,user_models"], {}, out)
            expect(rc == 0, f"the dry run passes (got {rc})", log)
            passed = checks(report, "user_models", "pass")
            names = sorted(c["name"].replace(" (host half)", "") for c in passed)
            expect(names == expected and len(checks(report, "user_models")) == len(expected),
                   f"each of the {len(expected)} model files has its host half passed: {names}",
                   log)
            expect(all("skipped: --cpu-dry-run" in c["detail"] for c in passed),
                   "each says its GPU halves were skipped", log)
            # A reference of another scale than the carried graph's: that model fails, by name.
            refs = os.path.join(out, "refs")
            os.makedirs(refs)
            magic, entries = read_refs(os.path.join(SOURCE, "tools", "device-check", "refs",
                                                    "user_models.ref"))
            broken = "user_models/compact-x2.pth/scale"
            entries = [(n, k, d, struct.pack("<q", 3) if n == broken else v)
                       for n, k, d, v in entries]
            write_refs(os.path.join(refs, "user_models.ref"), magic, entries)
            target = os.path.join(out, "kit.json")
            p = subprocess.run([kit, "--source", SOURCE, "--refs", refs, "--cpu-dry-run",
                                "--sections", "user_models", "--json", target],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            with open(target) as f:
                failed = [c for c in json.load(f)["checks"] if c["status"] == "fail"]
            expect(p.returncode == 1 and len(failed) == 1 and
                   failed[0]["name"].startswith("compact-x2.pth") and
                   "the reference is x3" in failed[0]["detail"],
                   "a wrong reference fails that model alone, saying why", p.stdout)
        elif case == "cudnn-root":
            def chosen(root):
                env = dict(os.environ, CUDNN_ROOT=root)
                p = subprocess.run([SCRIPT, "--out", out, "--prebuilt", kit, "--cpu-dry-run",
                                    "--sections", "device"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=120)
                line = [l for l in p.stdout.splitlines() if l.startswith("cuDNN: ")]
                return line[0] if line else p.stdout
            both = os.path.join(out, "both")
            header_only = os.path.join(out, "header-only")
            for d in (both + "/include", both + "/lib", header_only + "/include"):
                os.makedirs(d)
            for f in (both + "/include/cudnn.h", both + "/lib/libcudnn.so.9",
                      header_only + "/include/cudnn.h"):
                open(f, "w").close()
            line = chosen(both)
            expect(line == f"cuDNN: {both} (header {both}/include/cudnn.h, library "
                           f"{both}/lib/libcudnn.so.9)", "header and library from CUDNN_ROOT",
                   line)
            line = chosen(header_only)
            expect(header_only not in line, "a root without the library is passed over", line)
        elif case == "report":
            work = os.path.join(out, "work")
            os.makedirs(work)
            with open(os.path.join(work, "sections.tsv"), "w") as f:
                f.write("throughput\t0\t40\tok\nanchor\t0\t20\tok\n")
            throughput = [{"section": "throughput", "status": "pass",
                           "name": f"realesr-animevideov3-x2 480x270 fp16 {n} stream(s)",
                           "detail": "", "figures": {"fps": fps, "streams": n}}
                          for n, fps in ((1, 300.0), (2, 450.0))]
            with open(os.path.join(work, "kit-throughput.json"), "w") as f:
                json.dump({"device": {"available": True}, "dry_run": False,
                           "checks": throughput}, f)
            with open(os.path.join(work, "anchor.json"), "w") as f:
                json.dump({"device": "card", "torch": "2.11", "cases": [
                    {"model": "realesr-animevideov3-x2", "width": 480, "height": 270,
                     "precision": "fp16", "fps": 150.0}]}, f)
            target = os.path.join(out, "device-check.json")
            p = subprocess.run([sys.executable, os.path.join(SOURCE, "tools", "device-check",
                                                             "merge_report.py"),
                                "--work", work, "--out", target, "--final"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            log = p.stdout
            with open(target) as f:
                report = json.load(f)
            expect(p.returncode == 0, "no failed check, exit 0", log)
            ratio = report["upframe_vs_pytorch"]
            expect(len(ratio) == 1 and ratio[0]["ratio_1_stream"] == 2.0 and
                   ratio[0]["ratio_best"] == 3.0, "upframe/PyTorch 2 (1 stream), 3 (best)", log)
            expect("upframe/PyTorch realesr-animevideov3-x2 480x270 fp16: 2 (1 stream)" in log,
                   "the ratio printed per case", log)
            expect(any("FFmpeg" in n["why"] for n in report["not_covered"]) and
                   "not covered: full pipeline" in log, "what needs FFmpeg listed", log)
        elif case == "anchor":
            python = kit_dir
            if subprocess.run([python, "-c", "import torch"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode != 0:
                print(python + " has no torch (Debian: python3-torch)")
                sys.exit(77)
            anchor = os.path.join(SOURCE, "bench", "torch_anchor.py")
            p = subprocess.run([python, anchor, "--check-golden"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            expect(p.returncode == 0 and p.stdout.count("PASS") == 3,
                   "the three shipped models in PyTorch match the golden images", p.stdout)
            target = os.path.join(out, "anchor.json")
            p = subprocess.run([python, anchor, "--device", "cpu", "--sizes", "24x16",
                                "--seconds", "0.05", "--json", target],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            with open(target) as f:
                cases = json.load(f)["cases"]
            expect(p.returncode == 0 and len(cases) == 2 and all(c["fps"] > 0 for c in cases),
                   "the timing path ran both models and wrote its JSON", p.stdout)
        else:
            print("unknown case " + case)
            sys.exit(2)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
