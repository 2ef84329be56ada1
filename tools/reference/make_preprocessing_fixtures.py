#!/usr/bin/env python3
"""Writes tests/fixtures/preprocessing/: small generated inputs (images, videos) and what HF's PerceptionLM
image and video processors make of them (spec/plm_spec.md §3), for the data/ tests.

Rule: pixel values leave HF as (u8 - 127.5) / 127.5 with u8 the output of the uint8 resize (§3.3, §3.4), so
the script checks that every HF pixel value is exactly such a level and stores the u8 levels (lossless and
4x smaller than f32). Large outputs are stored as a CRC-32 per tile/frame plus a few full tiles; the
"small" configurations (tile 42, frames 56x40) are stored whole. Run from the repository root:
    .venv-ref/bin/python tools/reference/make_preprocessing_fixtures.py
"""

import io
import json
import os
import sys
import zlib
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

import transformers
from transformers import PerceptionLMImageProcessor, PerceptionLMVideoProcessor

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "preprocessing"
INPUTS = OUT / "inputs"

# Configurations of the image processor. "default" is the real PLM preprocessor config (§1.5).
IMAGE_CONFIGS = {
    "default": dict(tile_size=448, max_num_tiles=36, vision_input_type="thumb+tile"),
    "small": dict(tile_size=42, max_num_tiles=12, vision_input_type="thumb+tile"),
    "vanilla": dict(tile_size=448, max_num_tiles=36, vision_input_type="vanilla"),
}
# Tiles of the "default" config stored whole (image, tile index); the others are checked by CRC-32 only.
DEFAULT_FULL_TILES = {"rgb_640x480.jpg": 0}
# Videos whose decoded frames are stored whole (the others: CRC-32 per frame), and whose first 448x448
# frame is stored whole.
DECODED_FULL_VIDEOS = ("h264_64x48.mp4", "mjpeg_72x40.avi")
DEFAULT_FULL_FRAME_VIDEO = "h264_64x48.mp4"


def crc32(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


def pattern(h: int, w: int, seed: int) -> np.ndarray:
    """A deterministic RGB test image (h, w, 3) u8: smooth waves, a checkerboard, sharp boxes, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for c in range(3):
        wave = 90 * np.sin(2 * np.pi * (x / max(w, 1) * (1.5 + c) + y / max(h, 1) * (2.5 - c)) + c)
        channels.append(128 + wave)
    img = np.stack(channels, axis=-1)
    img += (((x // 7 + y // 5) % 2) * 50 - 25)[..., None]
    for _ in range(4):
        x0, y0 = rng.integers(0, max(w, 1)), rng.integers(0, max(h, 1))
        img[y0 : y0 + max(h // 6, 1), x0 : x0 + max(w // 5, 1)] = rng.integers(0, 256, 3)
    img += rng.normal(0, 2, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def make_images() -> list[str]:
    """Writes the committed image inputs; returns their file names."""
    names = []

    def save(name, im, **kw):
        im.save(INPUTS / name, **kw)
        names.append(name)

    save("tiny_5x3.png", Image.fromarray(pattern(3, 5, 1)))
    save("wide_1000x90.png", Image.fromarray(pattern(90, 1000, 2)))
    save("tall_120x900.png", Image.fromarray(pattern(900, 120, 3)))
    save("rgb_640x480.jpg", Image.fromarray(pattern(480, 640, 4)), quality=90)  # 4:2:0
    save("square_448.png", Image.fromarray(pattern(448, 448, 5)))
    save("large_1800x1200.jpg", Image.fromarray(pattern(1200, 1800, 6)), quality=70)
    save("odd_451x300_422.jpg", Image.fromarray(pattern(300, 451, 7)), quality=92, subsampling=1)  # 4:2:2
    save("progressive_444_300x200.jpg", Image.fromarray(pattern(200, 300, 8)), quality=85, progressive=True,
         subsampling=0)
    save("grey_300x200.png", Image.fromarray(pattern(200, 300, 9)[..., 1]))
    save("grey_257x129.jpg", Image.fromarray(pattern(129, 257, 10)[..., 0]), quality=90)

    rgba = np.concatenate([pattern(240, 320, 11), np.zeros((240, 320, 1), np.uint8)], axis=-1)
    rgba[..., 3] = np.linspace(0, 255, 320)[None, :].astype(np.uint8)  # alpha 0 on the left edge
    save("rgba_320x240.png", Image.fromarray(rgba, "RGBA"))
    la = np.stack([pattern(100, 150, 12)[..., 2], np.full((100, 150), 90, np.uint8)], axis=-1)
    save("grey_alpha_150x100.png", Image.fromarray(la, "LA"))

    pal = Image.fromarray(pattern(150, 200, 13)).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=0)
    save("palette_200x150.png", pal)
    pal16 = Image.fromarray(pattern(64, 96, 14)).quantize(colors=16, dither=0)
    save("palette4bit_trns_96x64.png", pal16, bits=4, transparency=3)

    save("interlaced_130x90.png", Image.fromarray(pattern(90, 130, 15)))  # re-encoded as Adam7 below
    _reencode_png_interlaced(INPUTS / "interlaced_130x90.png")

    cmyk = np.concatenate([pattern(80, 120, 16), pattern(80, 120, 17)[..., :1]], axis=-1)
    save("cmyk_120x80.jpg", Image.fromarray(cmyk, "CMYK"), quality=90)
    save("exif_rot6_160x100.jpg", Image.fromarray(pattern(100, 160, 18)), quality=90, exif=exif_with_orientation(6))
    save("exif_rot3_90x60.png", Image.fromarray(pattern(60, 90, 19)), exif=exif_with_orientation(3))
    return names


def _reencode_png_interlaced(path: Path) -> None:
    """Pillow cannot write Adam7, so the PNG is re-encoded here (raw filter 0 on each pass)."""
    img = np.array(Image.open(path))
    h, w, _ = img.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = img[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 1])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def make_bad_inputs() -> None:
    """Tiny files the decoders must refuse before allocating: a 100000x100000 PNG header, a 65000x65000 JPEG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(b"\x00" * 64)
    (INPUTS / "huge_header_100000x100000.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))

    buf = io.BytesIO()
    Image.fromarray(pattern(8, 8, 20)).save(buf, "JPEG", quality=75)
    jpeg = bytearray(buf.getvalue())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") + (65000).to_bytes(2, "big")  # height, width (libjpeg: <= 65500)
    (INPUTS / "huge_header_65000x65000.jpg").write_bytes(bytes(jpeg))


def moving_frame(t: int, h: int, w: int) -> np.ndarray:
    base = pattern(h, w, 100)
    base = np.roll(base, shift=(t * 2, t * 3), axis=(0, 1))
    y0 = (t * 3) % max(h - 8, 1)
    base[y0 : y0 + 8, :] = [(t * 40) % 256, 255 - (t * 25) % 256, 128]  # a bar that moves and changes colour
    return base


def write_video(name: str, codec: str, w: int, h: int, num_frames: int, fps: int, pix_fmt: str,
                options: dict | None = None) -> None:
    container = av.open(str(INPUTS / name), "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
    if options:
        stream.options = options
    for t in range(num_frames):
        frame = av.VideoFrame.from_ndarray(moving_frame(t, h, w), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


VIDEOS = [
    # name, codec, w, h, frames, fps, pix_fmt, options
    ("h264_64x48.mp4", "libx264", 64, 48, 30, 10, "yuv420p", {"bf": "3", "g": "12"}),  # B-frames
    ("vp9_96x64.webm", "libvpx-vp9", 96, 64, 24, 12, "yuv420p", {"g": "8"}),
    ("h264_160x96.mkv", "libx264", 160, 96, 40, 25, "yuv420p", {"g": "10"}),
    ("mjpeg_72x40.avi", "mjpeg", 72, 40, 20, 10, "yuvj420p", None),  # full range; width not a multiple of 32
]
VIDEO_CONFIGS = {
    # name: (processor kwargs, sampling kwargs)
    "default": (dict(), dict(num_frames=8)),
    "small": (dict(size={"height": 40, "width": 56}), dict(num_frames=8)),
    "small_fps2": (dict(size={"height": 40, "width": 56}), dict(fps=2)),
}


def make_videos() -> list[str]:
    for name, codec, w, h, n, fps, pix_fmt, options in VIDEOS:
        write_video(name, codec, w, h, n, fps, pix_fmt, options)
    container = av.open(str(INPUTS / "zero_frames.avi"), "w")  # a video stream with no frame in it
    stream = container.add_stream("mjpeg", rate=10)
    stream.width, stream.height, stream.pix_fmt = 16, 16, "yuvj420p"
    container.start_encoding()
    container.close()
    return [v[0] for v in VIDEOS]


def as_levels(pixel_values: torch.Tensor) -> np.ndarray:
    """HF pixel values -> the u8 levels they were made from; asserts the round trip is bit-exact (§3.4)."""
    pv = pixel_values.numpy()
    assert pv.dtype == np.float32
    levels = np.round(pv.astype(np.float64) * 127.5 + 127.5)
    assert levels.min() >= 0 and levels.max() <= 255
    levels = levels.astype(np.uint8)
    back = (levels.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    assert np.array_equal(back, pv), "HF pixel values are not (u8 - 127.5) / 127.5"
    return levels


def hf_grid(ip: PerceptionLMImageProcessor, w: int, h: int) -> tuple[int, int]:
    """The grid HF's resize() picks (image_processing_perception_lm.py), via its own private helpers."""
    if ip.max_num_tiles <= 1:
        return (1, 1)
    grid = ip._fit_image_to_canvas(img_width=w, img_height=h, tile_size=ip.tile_size)
    if grid is None:
        grid = ip._find_closest_aspect_ratio(img_width=w, img_height=h, tile_size=ip.tile_size)
    return tuple(int(v) for v in grid)


def grid_table() -> list[list[int]]:
    sizes = [(500, 450), (100, 100), (448, 448), (640, 480), (1024, 768), (1920, 1080), (3840, 2160),
             (4000, 3000), (800, 2000), (1000, 100), (7000, 1000), (10000, 10000), (451, 300), (1, 1),
             (1, 9000), (9000, 1), (2688, 2688), (2689, 2688), (5, 3), (3, 5)]
    rng = np.random.default_rng(1234)
    sizes += [tuple(int(v) for v in np.exp(rng.uniform(0, np.log(9000), 2))) for _ in range(300)]
    table = []
    for tile, max_tiles in [(448, 36), (448, 4), (448, 1), (42, 12), (16, 4), (336, 9)]:
        ip = PerceptionLMImageProcessor(tile_size=tile, max_num_tiles=max_tiles)
        for w, h in sizes:
            table.append([tile, max_tiles, w, h, *hf_grid(ip, w, h)])
    return table


# Direct resizes (torchvision v2 resize, as TorchvisionBackend.resize calls it): (name, h, w, out_h, out_w).
RESIZE_CASES = [
    ("down_37x23_to_11x7", 23, 37, 7, 11), ("up_37x23_to_50x61", 23, 37, 61, 50), ("width_only_37x23_to_90x23", 23, 37, 23, 90),
    ("height_only_37x23_to_37x5", 23, 37, 5, 37), ("to_1x1", 23, 37, 1, 1), ("from_1x1_to_9x7", 1, 1, 7, 9),
    ("down_by_13_300x200_to_23x15", 200, 300, 15, 23), ("mixed_64x16_to_20x70", 16, 64, 70, 20),
]


def resize_fixtures(arrays: dict) -> list[dict]:
    from torchvision.transforms.v2 import InterpolationMode, functional as tvF

    cases = []
    for i, (name, h, w, out_h, out_w) in enumerate(RESIZE_CASES):
        src = pattern(h, w, 200 + i)
        out = tvF.resize(torch.from_numpy(src).permute(2, 0, 1), [out_h, out_w],
                         interpolation=InterpolationMode.BICUBIC, antialias=True)
        arrays[f"resize/{name}/input"] = src
        arrays[f"resize/{name}/output"] = out.permute(1, 2, 0).contiguous().numpy()
        cases.append(dict(name=name, width=w, height=h, out_width=out_w, out_height=out_h))
    return cases


def image_fixtures(names: list[str], arrays: dict) -> dict:
    from torchcodec.decoders import decode_image as tc_decode
    from torchvision.io import ImageReadMode, decode_image as tv_decode

    processors = {k: PerceptionLMImageProcessor(**v) for k, v in IMAGE_CONFIGS.items()}
    result = {}
    for name in names:
        path = str(INPUTS / name)
        decoded = tc_decode(path, mode="RGB")  # what HF 5.23 does with a path when torchcodec >= 0.16 is there
        entry = dict(height=int(decoded.shape[1]), width=int(decoded.shape[2]),
                     decoded_crc32=crc32(decoded.permute(1, 2, 0)))  # of the (H, W, 3) bytes
        tv = tv_decode(path, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        entry["torchvision_decode_equal"] = bool(torch.equal(tv, decoded))
        with Image.open(path) as im:
            from PIL import ImageOps
            pil = torch.from_numpy(np.array(ImageOps.exif_transpose(im).convert("RGB"))).permute(2, 0, 1)
        entry["pil_decode_max_abs_diff"] = int((pil.int() - decoded.int()).abs().max()) if pil.shape == decoded.shape else -1
        if decoded.numel() <= 200 * 150 * 3:
            arrays[f"decoded/{name}"] = decoded.permute(1, 2, 0).contiguous().numpy()  # HWC like our decoder
        for cfg, ip in processors.items():
            out = ip(images=path, return_tensors="pt")["pixel_values"][0]
            again = ip(images=decoded, return_tensors="pt")["pixel_values"][0]
            assert torch.equal(out, again), f"{name}: path and tensor inputs disagree"
            levels = as_levels(out)
            w, h = entry["width"], entry["height"]
            grid = hf_grid(ip, w, h) if ip.vision_input_type == "thumb+tile" else None
            c = dict(num_tiles=int(levels.shape[0]), tile_crc32=[crc32(t) for t in levels])
            if grid is not None:
                c["grid"] = grid
                assert levels.shape[0] == 1 + grid[0] * grid[1]
            if cfg == "small":
                arrays[f"small/{name}"] = levels
            if cfg == "default" and name in DEFAULT_FULL_TILES:
                index = DEFAULT_FULL_TILES[name] % levels.shape[0]
                arrays[f"default/{name}/tile{index}"] = levels[index]
            entry[cfg] = c
        result[name] = entry
        print(f"{name}: {entry['width']}x{entry['height']} grid {entry['default']['grid']} "
              f"tv_equal={entry['torchvision_decode_equal']} pil_diff={entry['pil_decode_max_abs_diff']}")
    return result


def video_fixtures(names: list[str], arrays: dict) -> dict:
    from torchcodec.decoders import VideoDecoder

    result = {}
    for name in names:
        path = str(INPUTS / name)
        decoder = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=0)  # as video_utils.read_video_torchcodec
        md = decoder.metadata
        entry = dict(num_frames=int(md.num_frames), average_fps=float(md.average_fps),
                     duration_seconds=float(md.duration_seconds), width=int(md.width), height=int(md.height))
        for cfg, (proc_kwargs, sample_kwargs) in VIDEO_CONFIGS.items():
            vp = PerceptionLMVideoProcessor(**proc_kwargs)
            out = vp(videos=path, do_sample_frames=True, return_metadata=True, return_tensors="pt", **sample_kwargs)
            indices = [int(i) for i in out["video_metadata"][0].frames_indices]
            levels = as_levels(out["pixel_values_videos"][0])
            c = dict(sampling=sample_kwargs, frame_indices=indices, frame_crc32=[crc32(f) for f in levels])
            if cfg == "default":
                frames = decoder.get_frames_at(indices=indices).data  # (T, 3, H, W) u8 RGB, as HF decoded them
                c["decoded_crc32"] = [crc32(f.permute(1, 2, 0).contiguous()) for f in frames]
                if name in DECODED_FULL_VIDEOS:
                    arrays[f"decoded/{name}"] = frames.permute(0, 2, 3, 1).contiguous().numpy()
                if name == DEFAULT_FULL_FRAME_VIDEO:
                    arrays[f"video_default/{name}/frame0"] = levels[0]
            else:
                arrays[f"video_{cfg}/{name}"] = levels
            entry[cfg] = c
        result[name] = entry
        print(f"{name}: {entry['num_frames']} frames, {entry['average_fps']:.4f} fps, "
              f"indices {entry['default']['frame_indices']} / fps2 {entry['small_fps2']['frame_indices']}")
    return result


def main() -> int:
    INPUTS.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    image_names = make_images()
    make_bad_inputs()
    video_names = make_videos()

    arrays = {}
    manifest = dict(
        versions=dict(transformers=transformers.__version__, torch=torch.__version__,
                      torchcodec=__import__("torchcodec").__version__, pyav=av.__version__),
        image_configs=IMAGE_CONFIGS,
        video_configs={k: dict(processor=v[0], sampling=v[1]) for k, v in VIDEO_CONFIGS.items()},
        resize=resize_fixtures(arrays),
        images=image_fixtures(image_names, arrays),
        videos=video_fixtures(video_names, arrays),
    )
    text = json.dumps(manifest, indent=1)
    # One compact line per grid row: [tile_size, max_num_tiles, width, height, n_w, n_h].
    rows = ",\n  ".join(json.dumps(r) for r in grid_table())
    text = text[: text.rfind("}")].rstrip() + ',\n "grids": [\n  ' + rows + "\n ]\n}\n"
    (OUT / "manifest.json").write_text(text)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(OUT / "expected_u8.safetensors"))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
