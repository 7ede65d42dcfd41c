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
"""
import json
import os
import shutil
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
        else:
            print("unknown case " + case)
            sys.exit(2)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
