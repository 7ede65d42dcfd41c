#!/bin/sh
# Makes samples/sample.mp4: 3 s of 320x180 animation "on twos" (12 drawings a second shown at
# 24 fps, so every other frame repeats the one before, as in most anime) with a stereo AAC
# tone, through FFmpeg's own sources. The committed file was made by this script.
set -eu
out=${1:-"$(dirname "$0")/../samples/sample.mp4"}
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "mandelbrot=size=320x180:rate=12:start_scale=2.5:end_scale=0.05,format=yuv420p" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=3" \
  -filter_complex "[0:v]fps=24,trim=end_frame=72,setpts=PTS-STARTPTS[v];[1:a]pan=stereo|c0=c0|c1=c0[a]" \
  -map "[v]" -map "[a]" -c:v libx264 -preset medium -crf 18 -pix_fmt yuv420p \
  -color_primaries bt709 -color_trc bt709 -colorspace bt709 -color_range tv \
  -c:a aac -b:a 96k -movflags +faststart -t 3 "$out"
