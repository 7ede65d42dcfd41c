#!/bin/sh
# Distributed job, 1 worker against 4 workers on this machine, side by side in one run
# (docs/SCALE.md): the same plan (4 keyframe-aligned segments) run by one `upframe run-segment`
# loop, then by four at once, then joined; plus the one-process run cutting at the same frames.
# The joined outputs are checked equal (framemd5) to the one-process run.
#   bench/scale_workers.sh [UPFRAME] [MODEL] [SIZE] [FRAMES]
# defaults: build/upframe realesr-animevideov3 320x180 96
set -eu
upframe=$(realpath "${1:-build/upframe}")
model=${2:-realesr-animevideov3}
size=${3:-320x180}
frames=${4:-96}
keyint=$((frames / 4))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=$size:rate=8" \
  -f lavfi -i sine=frequency=440 -vf fps=24 -frames:v "$frames" -c:v libx264 -qp 0 \
  -pix_fmt yuv420p -x264-params "keyint=$keyint:min-keyint=$keyint:scenecut=0" \
  -c:a aac -shortest in.mkv
opts="--model $model --quiet"
seconds() { date +%s.%N; }
elapsed() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }

t0=$(seconds)
"$upframe" in.mkv -o one_process.mkv $opts --segment-frames "$keyint"
t1=$(seconds)
m1=$("$upframe" plan in.mkv -o w1.mkv $opts --segments 4)
for i in 0 1 2 3; do "$upframe" run-segment "$m1" --index "$i" --quiet; done
"$upframe" join "$m1" --quiet
t2=$(seconds)
m4=$("$upframe" plan in.mkv -o w4.mkv $opts --segments 4)
for i in 0 1 2 3; do "$upframe" run-segment "$m4" --index "$i" --quiet & done
wait
"$upframe" join "$m4" --quiet
t3=$(seconds)

md5() { ffmpeg -v error -i "$1" -map 0 -f framemd5 - | grep -v '^#' | md5sum | cut -d' ' -f1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $size, $frames frames, model $model, 4 segments of $keyint frames"
echo "one process:        $(elapsed "$t0" "$t1") s  framemd5 $(md5 one_process.mkv)"
echo "1 worker  (+join):  $(elapsed "$t1" "$t2") s  framemd5 $(md5 w1.mkv)"
echo "4 workers (+join):  $(elapsed "$t2" "$t3") s  framemd5 $(md5 w4.mkv)"
echo "4 workers / 1 worker speed-up: $(awk "BEGIN { printf \"%.2f\", ($t2 - $t1) / ($t3 - $t2) }")x"
