#!/usr/bin/env python3
"""Writes N distinct synthetic videos for the caption benchmark (bench/compare_caption.sh) with PyAV: MPEG-4 Part 2
in MP4, each frame a moving gradient and bar whose pattern depends on the video index, and a list file of their
paths (one per line) for `plm caption --inputs`.

  /work/venv-ref/bin/python bench/make_caption_videos.py --out DIR [--videos 16] [--frames 16] [--size 320x240]
"""

import argparse
import os

import av
import numpy as np


def frame(index, t, h, w):
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 3 + t * 7 + index * 31) % 256, (y * 2 + t * 5) % 256, (x + y + index * 53) % 256], axis=-1)
    bar = (t * 9 + index * 13) % max(h - 16, 1)
    rgb[bar:bar + 16, :] = [(index * 40) % 256, 255 - (t * 25) % 256, 128]
    return rgb.astype(np.uint8)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--videos", type=int, default=16)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", default="320x240")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    os.makedirs(a.out, exist_ok=True)
    paths = []
    for i in range(a.videos):
        path = os.path.join(a.out, f"video_{i:04d}.mp4")
        container = av.open(path, "w")
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(a.frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame(i, t, h, w), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        container.close()
        paths.append(os.path.abspath(path))
    with open(os.path.join(a.out, "list.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    print(f"{a.videos} videos of {a.frames} frames at {w}x{h} in {a.out}")


if __name__ == "__main__":
    main()
