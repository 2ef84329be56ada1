#!/usr/bin/env python3
"""Writes tests/fixtures/models/: two tiny random PerceptionLM checkpoints with exactly the real architecture
(spec/plm_spec.md §1, §2, §5), saved as HF directories in the transformers 5.x and the 4.5x hub layouts, fixed
inputs (an image, a 4-frame video, a text-only chat), and what HF transformers computes from them (§7.3).

Rules: weights are stored bf16; every golden is computed in fp32 from the saved files
(`from_pretrained(dir, dtype=torch.float32)`), so C++ reads the same numbers. Embedding / lm_head rows outside
KEPT_IDS are zero, which keeps the 128256-row tables cheap in git and makes every logit outside KEPT_IDS exactly 0.
Layout and tensor names are documented in tools/reference/README.md and tests/fixtures/models/meta.json. Run from
the repository root:  .venv-ref/bin/python tools/reference/make_model_fixtures.py
"""

import json
import math
import os
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import timm
import torch
import transformers
from PIL import Image
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save_file
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    GenerationConfig,
    LlamaConfig,
    PerceptionLMConfig,
    PerceptionLMForConditionalGeneration,
    PerceptionLMImageProcessor,
    PerceptionLMProcessor,
    PerceptionLMVideoProcessor,
    PreTrainedTokenizerFast,
    TimmWrapperConfig,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "models"
TOKENIZER_DATA = Path("/work/shared/data/tokenizer")

VOCAB_SIZE = 128256
NUM_NEW_TOKENS = 32
TILE_SIZE = 56  # = vision img_size: timm's PatchEmbed accepts exactly img_size (spec §1.2)
MAX_NUM_TILES = 4
STOP_IDS = (128001, 128009)

# spec/tokenizer.md §1.2: PLM's 256 special tokens, id = 128000 + index.
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|image|>", "<|video|>", "<|reserved_special_token_2|>",
    "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>",
    "<|eot_id|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
PRETOKENIZER_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# spec/tokenizer.md §1.4, verbatim.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}"
    "    {%- set system_message = 'You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.' %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- system_message }}"
    "{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<|image|>' }}"
    "{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<|video|>' }}"
    "{%- endfor %}"
    "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{- content['text'] | trim }}"
    "{%- endfor %}"
    "{{'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

LLAMA3_ROPE = dict(
    rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
    original_max_position_embeddings=8192,
)
DEFAULT_ROPE = dict(rope_type="default", rope_theta=500000.0)

# The two tiny models. "cls_tied" is the 1B/3B shape (PE-L arch, CLS, tied, llama3 rope; widths as configs/tiny);
# "nocls_untied" the 8B shape (PE-G arch, no CLS, rope grid offset 0, untied lm_head, no rope scaling) with an
# explicit text head_dim != hidden/heads and GQA ratio 4.
MODELS = {
    "cls_tied": dict(
        seed=1,
        architecture="vit_pe_core_large_patch14_336",
        vision=dict(embed_dim=32, depth=2, num_heads=2),
        vision_use_cls_token=True,
        text=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=11520),
        rope=LLAMA3_ROPE,
        tied=True,
        hub45_dir="cls_tied_hub45",
        hub45_shards=1,
        hub45_drop_head_dim=True,  # head_dim == hidden/heads here: the loader's fallback for configs without it
    ),
    "nocls_untied": dict(
        seed=2,
        architecture="vit_pe_core_gigantic_patch14_448",
        vision=dict(embed_dim=48, depth=2, num_heads=4),
        vision_use_cls_token=False,
        text=dict(hidden_size=24, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=1, head_dim=12, max_position_embeddings=11520),
        rope=DEFAULT_ROPE,
        tied=False,
        hub45_dir="nocls_untied_hub45",
        hub45_shards=2,
        hub45_drop_head_dim=False,
    ),
}

IMAGE_NAME = "image_150x100.png"
VIDEO_NAME = "video_64x48_4f.mp4"
VIDEO_FRAMES_NAME = "video_64x48_4f_frames.safetensors"


def chat(case: str, media) -> list[dict]:
    """The conversation of each case; `media` is the decoded image (PIL) or video frames (T, H, W, 3) u8."""
    if case == "image":
        return [{"role": "user", "content": [{"type": "image", "image": media},
                                             {"type": "text", "text": "Describe this image."}]}]
    if case == "video":
        return [{"role": "user", "content": [{"type": "video", "video": media},
                                             {"type": "text", "text": "What is happening in this video?"}]}]
    return [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]},
        {"role": "user", "content": [{"type": "text", "text": "And of Italy?"}]},
    ]


CASES = ("image", "video", "text")

# Prompts with several media items (PlmModel's scatter across items and kinds, spec §2.1, §3.7), made from the same
# image and video and the texts above (every prompt id is in kept_ids). They do not pick kept_ids, so adding them
# changes no model, and they store a smaller set of goldens (mixed_goldens). HF stacks the images of one prompt,
# so they need equal tile counts (spec §3.8): the second image is the first mirrored, with the same grid.
MIXED_CASES = ("two_images", "video_image")


def mixed_chat(case: str, media) -> list[dict]:
    """`media`: (image, mirrored image) or (video frames, image); None for the meta's conversation. One item per
    user turn: a turn renders its images before its videos (spec/tokenizer.md), separate turns keep the order,
    so in video_image the video placeholders come before the image's."""
    first, second = media if media is not None else (None, None)
    kinds = {"two_images": ("image", "image"), "video_image": ("video", "image")}[case]
    questions = {"image": "Describe this image.", "video": "What is happening in this video?"}

    def user(kind: str, item) -> dict:
        return {"role": "user", "content": [{"type": kind, kind: item}, {"type": "text", "text": questions[kind]}]}

    return [user(kinds[0], first), {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]},
            user(kinds[1], second)]


def save_np(arrays: dict[str, np.ndarray], path: str) -> None:
    """safetensors.numpy writes an array's memory as is: a transposed view would be stored scrambled."""
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, path)


# ----------------------------------------------------------------------------------------------- tokenizer


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The PLM tokenizer as the HF converter builds it (spec/tokenizer.md §1.3, §2): byte-level BPE from the
    Llama 3 vocab/merges, the 256 specials, BOS template post-processor, the PLM chat template."""
    vocab = json.loads((TOKENIZER_DATA / "llama3.2_encoder.json").read_text(encoding="utf-8"))
    lines = (TOKENIZER_DATA / "llama3.2_vocab.bpe").read_text(encoding="utf-8").split("\n")
    merges = [tuple(line.split(" ")) for line in lines if line]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZER_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|>:0 $A:0 <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", 128000)],
        ),
    ])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|end_of_text|>",
        model_max_length=11520, clean_up_tokenization_spaces=True,
        extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"}, chat_template=CHAT_TEMPLATE,
    )
    check_tokenizer(fast)
    return fast


def check_tokenizer(tokenizer) -> None:
    """The shared chat-template vectors (spec/tokenizer.md §1.4) must come out exactly."""
    assert len(tokenizer) == VOCAB_SIZE, len(tokenizer)
    assert (tokenizer.image_token_id, tokenizer.video_token_id) == (128002, 128003)
    cases = json.loads((TOKENIZER_DATA / "plm_chat_template_cases.json").read_text(encoding="utf-8"))["cases"]
    for case in cases:
        rendered = tokenizer.apply_chat_template(case["messages"], add_generation_prompt=case["add_generation_prompt"],
                                                 tokenize=False)
        assert rendered == case["rendered"], case["name"]
        ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert ids == case["ids"], case["name"]


def build_processor(tokenizer) -> PerceptionLMProcessor:
    image_processor = PerceptionLMImageProcessor(
        tile_size=TILE_SIZE, max_num_tiles=MAX_NUM_TILES, size={"height": TILE_SIZE, "width": TILE_SIZE},
        vision_input_type="thumb+tile")
    video_processor = PerceptionLMVideoProcessor(size={"height": TILE_SIZE, "width": TILE_SIZE})
    return PerceptionLMProcessor(video_processor=video_processor, image_processor=image_processor,
                                 tokenizer=tokenizer, patch_size=14, pooling_ratio=2, chat_template=CHAT_TEMPLATE)


# ----------------------------------------------------------------------------------------------- inputs


def make_image() -> Image.Image:
    """150x100 RGB: smooth waves, a checkerboard, boxes and mild noise; thumb+tile at 56 gives a 2x2 grid."""
    rng = np.random.default_rng(7)
    h, w = 100, 150
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(2 * np.pi * (x / w * (1.5 + c) + y / h * (2.5 - c)) + c) for c in range(3)], -1)
    img += (((x // 9 + y // 7) % 2) * 40 - 20)[..., None]
    for _ in range(5):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        img[y0:y0 + 18, x0:x0 + 25] = rng.integers(0, 256, 3)
    img += rng.normal(0, 3, img.shape)
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def make_video(path: Path) -> np.ndarray:
    """Encodes 4 moving-square frames (64x48, H.264, yuv420p) and returns them decoded with PyAV (T, H, W, 3) u8,
    which is what the processor is given (spec §3.6: decode outside the processor)."""
    h, w, n = 48, 64, 4
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "threads": "1"}
        stream.thread_count = 1
        for t in range(n):
            y, x = np.mgrid[0:h, 0:w]
            frame = np.stack([(x * 4 + t * 30) % 256, (y * 5) % 256, np.full_like(x, 60 + 40 * t)], -1)
            frame[10 + 3 * t:26 + 3 * t, 8 + 10 * t:24 + 10 * t] = (250, 240, 20)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert frames.shape == (n, h, w, 3), frames.shape
    return frames


def tile_grid(image_processor, image: Image.Image) -> dict:
    """The thumb+tile grid HF picks (spec §3.2): (n_w, n_h) and whether a canvas fits or the closest ratio wins."""
    size = dict(img_width=image.width, img_height=image.height, tile_size=TILE_SIZE)
    fit = image_processor._fit_image_to_canvas(**size)
    grid = fit if fit is not None else image_processor._find_closest_aspect_ratio(**size)
    return {"n_w": int(grid[0]), "n_h": int(grid[1]), "via": "fit" if fit is not None else "closest",
            "tiles_with_thumbnail": int(grid[0] * grid[1] + 1)}


def process(processor, case: str, media) -> dict[str, torch.Tensor]:
    conversation = mixed_chat(case, media) if case in MIXED_CASES else chat(case, media)
    return processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt")


# ----------------------------------------------------------------------------------------------- models


def hf_config(spec: dict) -> PerceptionLMConfig:
    embed_dim = spec["vision"]["embed_dim"]
    grid = TILE_SIZE // 14
    vision = TimmWrapperConfig(architecture=spec["architecture"], model_args=dict(
        embed_dim=embed_dim, depth=spec["vision"]["depth"], num_heads=spec["vision"]["num_heads"],
        img_size=(TILE_SIZE, TILE_SIZE), ref_feat_shape=(grid, grid), init_values=0.1,
        use_post_transformer_norm=False, global_pool=""))
    text = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_act="silu", rms_norm_eps=1e-5, rope_parameters=dict(spec["rope"]),
                       tie_word_embeddings=spec["tied"], bos_token_id=128000, eos_token_id=list(STOP_IDS),
                       **spec["text"])
    return PerceptionLMConfig(vision_config=vision, text_config=text, vision_use_cls_token=spec["vision_use_cls_token"],
                              projector_pooling_ratio=2, tie_word_embeddings=spec["tied"])


def randomize(model, seed: int, kept_ids: np.ndarray) -> None:
    """Deterministic weights with O(1) activations (HF's 0.02 init would make every logit ~0): linears
    N(0, 1/fan_in), norms 1 + N(0, 0.2^2), biases N(0, 0.1^2), LayerScale U(0.2, 0.6), untied lm_head N(0, 0.5^2),
    embeddings N(0, 0.3^2): small next to the O(1) layer outputs, else a tied model just repeats its last input
    token. Embedding and lm_head rows outside kept_ids are zeroed."""
    gen = torch.Generator().manual_seed(seed)
    dropped = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    dropped[torch.from_numpy(kept_ids).long()] = False
    with torch.no_grad():
        for name, p in model.named_parameters():  # a tied lm_head is the same tensor as embed_tokens: listed once
            if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                std = 0.3 if name.endswith("embed_tokens.weight") else 0.5
                value = torch.randn(p.shape, generator=gen) * std
                value[dropped] = 0
            elif "gamma_" in name:
                value = 0.2 + 0.4 * torch.rand(p.shape, generator=gen)
            elif name.endswith("bias"):
                value = 0.1 * torch.randn(p.shape, generator=gen)
            elif p.ndim == 1:
                value = 1 + 0.2 * torch.randn(p.shape, generator=gen)
            elif "pos_embed" in name or "cls_token" in name:
                value = 0.5 * torch.randn(p.shape, generator=gen)
            else:
                value = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            p.copy_(value)


def rope_regimes(spec: dict) -> list[str] | None:
    """Which llama3 branch each text inv_freq index takes (spec §2.7), to show the config exercises all three."""
    rope = spec["rope"]
    if rope["rope_type"] != "llama3":
        return None
    text = spec["text"]
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    low = rope["original_max_position_embeddings"] / rope["low_freq_factor"]
    high = rope["original_max_position_embeddings"] / rope["high_freq_factor"]
    regimes = []
    for i in range(head_dim // 2):
        wavelen = 2 * math.pi * rope["rope_theta"] ** (2 * i / head_dim)
        regimes.append("kept" if wavelen < high else "divided" if wavelen > low else "blended")
    return regimes


def write_v5_dir(model, processor, path: Path) -> None:
    """transformers 5.x save_pretrained layout (spec §1.5); tokenizer.json is a link to the shared copy."""
    if path.exists():
        shutil.rmtree(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    link_shared_tokenizer(path)


def link_shared_tokenizer(path: Path) -> None:
    tokenizer_json = path / "tokenizer.json"
    if tokenizer_json.exists() or tokenizer_json.is_symlink():
        tokenizer_json.unlink()
    tokenizer_json.symlink_to(Path("..") / "tokenizer" / "tokenizer.json")


def hub45_config(v5_config: dict, drop_head_dim: bool) -> dict:
    """The 4.5x converter's spelling of the same config (spec §1.5): rope_theta + rope_scaling instead of
    rope_parameters, torch_dtype instead of dtype, no top-level tie_word_embeddings, the timm hub's meaningless
    top-level global_pool; optionally no head_dim (then hidden/heads applies)."""
    cfg = json.loads(json.dumps(v5_config))
    text = cfg["text_config"]
    if drop_head_dim:
        assert text.pop("head_dim") == text["hidden_size"] // text["num_attention_heads"]
    rope = text.pop("rope_parameters")
    text["rope_theta"] = rope.pop("rope_theta")
    text["rope_scaling"] = None if rope["rope_type"] == "default" else rope
    text["torch_dtype"] = "bfloat16"
    cfg.pop("tie_word_embeddings")
    cfg["torch_dtype"] = cfg.pop("dtype")
    vision = cfg["vision_config"]
    vision.pop("num_classes", None)
    vision["global_pool"] = "map"
    cfg["transformers_version"] = "4.54.0.dev0"
    return cfg


def hub45_processor_files(processor_config: dict) -> dict[str, dict]:
    image = dict(processor_config["image_processor"])
    image.update(image_processor_type="PerceptionLMImageProcessorFast", processor_class="PerceptionLMProcessor",
                 max_frame_tiles=1)
    video = dict(processor_config["video_processor"])
    return {
        "preprocessor_config.json": image,
        "video_preprocessor_config.json": video,
        "processor_config.json": {"patch_size": processor_config["patch_size"],
                                  "pooling_ratio": processor_config["pooling_ratio"],
                                  "processor_class": "PerceptionLMProcessor"},
    }


def hub45_tokenizer_files() -> dict[str, dict]:
    added = {str(128000 + i): dict(content=t, lstrip=False, normalized=False, rstrip=False, single_word=False,
                                   special=True) for i, t in enumerate(SPECIAL_TOKENS)}
    config = {
        "added_tokens_decoder": added, "bos_token": "<|begin_of_text|>", "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>", "extra_special_tokens": {"image_token": "<|image|>", "video_token": "<|video|>"},
        "image_token": "<|image|>", "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 11520, "pad_token": "<|end_of_text|>", "processor_class": "PerceptionLMProcessor",
        "tokenizer_class": "PreTrainedTokenizerFast", "video_token": "<|video|>",
    }
    special = {k: dict(content=v, lstrip=False, normalized=False, rstrip=False, single_word=False)
               for k, v in (("bos_token", "<|begin_of_text|>"), ("eos_token", "<|eot_id|>"),
                            ("pad_token", "<|end_of_text|>"))}
    special.update(image_token="<|image|>", video_token="<|video|>")
    return {"tokenizer_config.json": config, "special_tokens_map.json": special,
            "chat_template.json": {"chat_template": CHAT_TEMPLATE}}


def write_hub45_dir(v5_path: Path, path: Path, spec: dict, key_order: list[str]) -> dict:
    """The 4.5x hub layout of the model in v5_path: separate preprocessor configs, chat_template.json,
    PreTrainedTokenizerFast config, and either one model.safetensors (a link to the v5 file: same bytes) or
    `model-0000k-of-0000n.safetensors` + `model.safetensors.index.json`, written here with safetensors."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    files = {"config.json": hub45_config(json.loads((v5_path / "config.json").read_text()),
                                         spec["hub45_drop_head_dim"])}
    files["generation_config.json"] = json.loads((v5_path / "generation_config.json").read_text())
    files.update(hub45_processor_files(json.loads((v5_path / "processor_config.json").read_text())))
    files.update(hub45_tokenizer_files())
    for name, content in files.items():
        (path / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    link_shared_tokenizer(path)
    if spec["hub45_shards"] == 1:
        (path / "model.safetensors").symlink_to(Path("..") / v5_path.name / "model.safetensors")
        return {"weights": "model.safetensors (link to the 5.x file)"}
    return write_shards(v5_path / "model.safetensors", path, spec["hub45_shards"], key_order)


def write_shards(source: Path, path: Path, num_shards: int, key_order: list[str]) -> dict:
    """Splits the state dict, in module order, into num_shards contiguous groups at decoder-layer boundaries, so
    the text layers straddle files (as in the real 3B/8B checkpoints) and the big embed_tokens and lm_head land in
    different files."""
    from safetensors import safe_open
    with safe_open(str(source), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    order = [k for k in key_order if k in tensors]
    assert sorted(order) == sorted(tensors)
    num_layers = 1 + max(int(k.split(".")[3]) for k in order if k.startswith("model.language_model.layers."))
    first_keys = [f"model.language_model.layers.{num_layers * k // num_shards}." for k in range(1, num_shards)]
    starts = [next(i for i, key in enumerate(order) if key.startswith(p)) for p in first_keys]
    groups = [order[a:b] for a, b in zip([0] + starts, starts + [len(order)])]
    weight_map = {}
    for k, keys in enumerate(groups):
        name = f"model-{k + 1:05d}-of-{num_shards:05d}.safetensors"
        save_torch({key: tensors[key].contiguous() for key in keys}, str(path / name), metadata={"format": "pt"})
        weight_map.update({key: name for key in keys})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return {"weights": sorted(set(weight_map.values())), "total_size": total,
            "first_key_of_each_shard": [g[0] for g in groups]}


def load(path: Path, dtype: torch.dtype):
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    return model.eval()


# ----------------------------------------------------------------------------------------------- goldens


class Recorder:
    """Forward hooks that keep named intermediates (the first call of each module only: the prefill)."""

    def __init__(self, model):
        self.values: dict[str, torch.Tensor] = {}
        self.handles = []
        vit = model.model.vision_tower.timm_model
        self.hook(vit.patch_embed, "vision.patch_embed")
        self.hook(vit.norm_pre, "vision.norm_pre")
        for i, block in enumerate(vit.blocks):
            self.hook(block, f"vision.blocks.{i}")
        # linear_2 sees LND (spec §2.5); stored as NLD like everything else.
        self.hook(model.model.multi_modal_projector.linear_2, "projector.pre_pool", lambda t: t.permute(1, 0, 2))
        self.hook(model.model.multi_modal_projector, "projector.output")
        lm = model.model.language_model
        self.handles.append(lm.register_forward_pre_hook(self.capture_inputs_embeds, with_kwargs=True))
        for i, layer in enumerate(lm.layers):
            self.hook(layer, f"text.layers.{i}")
        self.hook(lm.norm, "text.final_hidden")

    def hook(self, module, name, transform=lambda t: t):
        def fn(_module, _inputs, output):
            if name not in self.values:
                tensor = output[0] if isinstance(output, tuple) else output
                self.values[name] = transform(tensor).detach().float().contiguous().clone()
        self.handles.append(module.register_forward_hook(fn))

    def capture_inputs_embeds(self, _module, _args, kwargs):
        if "text.inputs_embeds" not in self.values:
            self.values["text.inputs_embeds"] = kwargs["inputs_embeds"].detach().float().clone()

    def close(self):
        for h in self.handles:
            h.remove()


def greedy(model, inputs) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """NUM_NEW_TOKENS greedy tokens with stopping disabled (eos_token_id None), the top-2 logits of every step,
    and the step logits."""
    # generate() fills the config's None fields from the model's own generation_config, whose eos_token_id is
    # STOP_IDS: only clearing it there disables stopping (the single-item cases never reach a stop id either way).
    model.generation_config.eos_token_id = None
    config = GenerationConfig(do_sample=False, max_new_tokens=NUM_NEW_TOKENS, min_new_tokens=0, eos_token_id=None,
                              pad_token_id=STOP_IDS[0], bos_token_id=128000, return_dict_in_generate=True,
                              output_logits=True)
    out = model.generate(**inputs, generation_config=config)
    new = out.sequences[0, inputs["input_ids"].shape[1]:]
    assert new.numel() == NUM_NEW_TOKENS, new.numel()
    step_logits = torch.stack([l[0].float() for l in out.logits])  # (NUM_NEW_TOKENS, V)
    assert torch.equal(step_logits.argmax(-1), new)
    return new.numpy().astype(np.int32), step_logits.topk(2, dim=-1).values.numpy(), step_logits


def fp32_goldens(model, inputs, kept_ids: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    recorder = Recorder(model)
    with torch.no_grad():
        out = model(**inputs)
    recorder.close()
    values = {k: v[0] if k.startswith("text.") else v for k, v in recorder.values.items()}  # drop batch 1 of text
    logits = out.logits[0].float()  # (S, V)
    kept = torch.from_numpy(kept_ids).long()
    outside = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    outside[kept] = False
    assert torch.count_nonzero(logits[:, outside]) == 0, "logits outside KEPT_IDS must be exactly zero"
    tensors = {k: v.numpy() for k, v in values.items()}
    if "pixel_values" in inputs or "pixel_values_videos" in inputs:
        pixels = inputs.get("pixel_values", inputs.get("pixel_values_videos"))
        with torch.no_grad():
            tower = model.model.vision_tower(pixels.flatten(0, 1)).last_hidden_state
        tensors["vision.last_hidden_state"] = tower.float().numpy()
        depth = len(model.model.vision_tower.timm_model.blocks)
        assert np.array_equal(tensors["vision.last_hidden_state"], tensors[f"vision.blocks.{depth - 1}"])
    else:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(("vision.", "projector."))}
    tensors["input_ids"] = inputs["input_ids"][0].numpy().astype(np.int32)
    tensors["logits.kept_ids"] = kept_ids
    tensors["logits.kept"] = logits[:, kept].numpy()
    tensors["logits.last2"] = logits[-2:].numpy()
    tokens, top2, _ = greedy(model, inputs)
    tensors["generate.tokens"] = tokens
    tensors["generate.top2_logits"] = top2
    info = dict(seq_len=int(logits.shape[0]), generated=tokens.tolist(), **stop_info(tokens),
                min_greedy_margin=float((top2[:, 0] - top2[:, 1]).min()),
                prefill_margin=float(np.diff(np.sort(logits[-1].numpy())[-2:])[0]),
                teacher_forced_agreement=teacher_forced_agreement(model, inputs, tokens))
    return tensors, info


def teacher_forced_agreement(model, inputs, tokens: np.ndarray) -> int:
    """How many generated tokens equal the argmax of one full forward over prompt + generated tokens (the KV-cache
    decode and a full recompute agree unless a step is a near tie)."""
    full = dict(inputs)
    ids = torch.cat([inputs["input_ids"], torch.from_numpy(tokens).long()[None]], 1)
    full["input_ids"] = ids
    full["attention_mask"] = torch.ones_like(ids)
    with torch.no_grad():
        logits = model(**full).logits[0]
    prompt_len = inputs["input_ids"].shape[1]
    predicted = logits[prompt_len - 1:-1].argmax(-1).numpy()
    return int((predicted == tokens).sum())


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    differ = np.nonzero(a != b)[0]
    return int(differ[0]) if differ.size else int(a.size)


def rope_tables(fp32, bf16) -> dict[str, np.ndarray]:
    """timm's cached vision RoPE table (sin | cos per patch token, spec §2.3) under both loads, and HF's text
    inv_freq (after the llama3 adjustment, spec §2.7)."""
    return {
        "vision.rope.pos_embed": fp32.model.vision_tower.timm_model.rope.pos_embed.float().numpy(),
        "vision.rope.pos_embed.bf16_load": bf16.model.vision_tower.timm_model.rope.pos_embed.float().numpy(),
        "vision.rope.bands": fp32.model.vision_tower.timm_model.rope.bands.float().numpy(),
        "text.inv_freq": fp32.model.language_model.rotary_emb.inv_freq.float().numpy(),
    }


def stop_info(tokens: np.ndarray) -> dict:
    stops = [i for i, t in enumerate(tokens.tolist()) if t in STOP_IDS]
    return {"first_stop_index": stops[0] if stops else None}


def bf16_goldens(model, inputs) -> tuple[dict[str, np.ndarray], dict]:
    tokens, top2, step_logits = greedy(model, inputs)
    tensors = {"generate.tokens": tokens, "generate.top2_logits": top2, "logits.last": step_logits[0].numpy()}
    return tensors, dict(generated=tokens.tolist(), **stop_info(tokens),
                         min_greedy_margin=float((top2[:, 0] - top2[:, 1]).min()))


def check_goldens(model_dir: Path, spec: dict, inputs: dict[str, np.ndarray], t: dict[str, np.ndarray]) -> None:
    """Recomputes a few steps in numpy from the saved weights, to show each stored intermediate is what its name
    says: patch-embed GEMM, 2x2 pooling, scatter into the embeddings, final RMSNorm, lm_head at kept_ids."""
    w = {k: v.float().numpy() for k, v in load_torch(str(model_dir / "model.safetensors")).items()}
    vit = "model.vision_tower.timm_model."
    embed = w["model.language_model.embed_tokens.weight"]
    ids = t["input_ids"]
    expected_embeds = embed[ids]
    pixels = inputs.get("pixel_values", inputs.get("pixel_values_videos"))
    if pixels is not None:
        n, grid = pixels.shape[1], TILE_SIZE // 14
        patches = pixels[0].reshape(n, 3, grid, 14, grid, 14).transpose(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, -1)
        conv = patches @ w[vit + "patch_embed.proj.weight"].reshape(spec["vision"]["embed_dim"], -1).T
        assert np.abs(conv - t["vision.patch_embed"]).max() < 1e-4
        y = t["projector.pre_pool"].reshape(n, grid // 2, 2, grid // 2, 2, -1)
        pooled = y.mean(axis=(2, 4)).reshape(n, (grid // 2) ** 2, -1)
        assert np.abs(pooled - t["projector.output"]).max() < 1e-5
        media_id = 128002 if "pixel_values" in inputs else 128003
        expected_embeds[ids == media_id] = t["projector.output"].reshape(-1, t["projector.output"].shape[-1])
    assert np.array_equal(expected_embeds, t["text.inputs_embeds"])
    x = t[f"text.layers.{spec['text']['num_hidden_layers'] - 1}"]
    normed = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w["model.language_model.norm.weight"]
    assert np.abs(normed - t["text.final_hidden"]).max() < 1e-5
    head = w["lm_head.weight"] if "lm_head.weight" in w else embed
    logits = t["text.final_hidden"] @ head[t["logits.kept_ids"]].T
    assert np.abs(logits - t["logits.kept"]).max() < 1e-4


def mixed_goldens(model, inputs, kept_ids: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """A MIXED_CASES prompt: the embeddings after the scatter of every item, the final hidden states, the last
    position's logits at kept_ids (the rest is exactly 0) and the greedy tokens."""
    recorder = Recorder(model)
    with torch.no_grad():
        out = model(**inputs)
    recorder.close()
    logits = out.logits[0].float()
    tokens, top2, _ = greedy(model, inputs)
    tensors = {
        "input_ids": inputs["input_ids"][0].numpy().astype(np.int32),
        "text.inputs_embeds": recorder.values["text.inputs_embeds"][0].numpy(),
        "text.final_hidden": recorder.values["text.final_hidden"][0].numpy(),
        "logits.kept_ids": kept_ids,
        "logits.last_kept": logits[-1, torch.from_numpy(kept_ids).long()].numpy(),
        "generate.tokens": tokens,
        "generate.top2_logits": top2,
    }
    info = dict(seq_len=int(logits.shape[0]), generated=tokens.tolist(), **stop_info(tokens),
                min_greedy_margin=float((top2[:, 0] - top2[:, 1]).min()))
    return tensors, info


def check_mixed_goldens(case: str, t: dict[str, np.ndarray], single: dict[str, dict[str, np.ndarray]]) -> None:
    """Every item's rows in the scattered embeddings are that item's projector output of its single-item case
    (`single`: the expected/<model>/<image|video>.safetensors tensors), in order: the mirrored image's are not."""
    ids, embeds = t["input_ids"], t["text.inputs_embeds"]
    image_rows, video_rows = embeds[ids == 128002], embeds[ids == 128003]
    image = single["image"]["projector.output"].reshape(-1, embeds.shape[1])
    if case == "two_images":
        assert image_rows.shape[0] == 2 * image.shape[0] and video_rows.shape[0] == 0
        assert np.abs(image_rows[:image.shape[0]] - image).max() < 1e-5
        assert np.abs(image_rows[image.shape[0]:] - image).max() > 0.1
    else:
        video = single["video"]["projector.output"].reshape(-1, embeds.shape[1])
        assert np.abs(image_rows - image).max() < 1e-5 and np.abs(video_rows - video).max() < 1e-5
        assert np.nonzero(ids == 128003)[0].max() < np.nonzero(ids == 128002)[0].min()


def mixed_case_inputs(processor, image: Image.Image, frames: np.ndarray) -> tuple[dict, dict]:
    """Processes MIXED_CASES and writes inputs/<case>.safetensors; returns the inputs and their meta."""
    media = {"two_images": (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), "video_image": (frames, image)}
    inputs, meta = {}, {}
    for case in MIXED_CASES:
        inputs[case] = process(processor, case, media[case])
        arrays = {k: v.numpy().astype(np.int32 if k in ("input_ids", "attention_mask") else np.float32)
                  for k, v in inputs[case].items()}
        save_np(arrays, str(OUT / "inputs" / f"{case}.safetensors"))
        rendered = processor.apply_chat_template(mixed_chat(case, media[case]), add_generation_prompt=True,
                                                 tokenize=False)
        meta[case] = dict(
            file=f"inputs/{case}.safetensors", shapes={k: list(v.shape) for k, v in arrays.items()},
            rendered_prompt=rendered, conversation=mixed_chat(case, None),
            media={"two_images": f"{IMAGE_NAME}, then the same mirrored left to right",
                   "video_image": f"{VIDEO_NAME} (decoded: {VIDEO_FRAMES_NAME}), then {IMAGE_NAME}"}[case],
            num_image_tokens=int((arrays["input_ids"] == 128002).sum()),
            num_video_tokens=int((arrays["input_ids"] == 128003).sum()))
    return inputs, meta


def write_mixed_goldens(model, name: str, inputs: dict, kept_ids: np.ndarray) -> dict:
    """expected/<name>/<case>.safetensors for MIXED_CASES (after the single-item cases); returns their meta."""
    single = {case: load_np(str(OUT / "expected" / name / f"{case}.safetensors")) for case in ("image", "video")}
    meta = {}
    for case in MIXED_CASES:
        assert set(inputs[case]["input_ids"][0].tolist()) <= set(kept_ids.tolist()), case
        t, info = mixed_goldens(model, inputs[case], kept_ids)
        check_mixed_goldens(case, t, single)
        save_np(t, str(OUT / "expected" / name / f"{case}.safetensors"))
        meta[case] = dict(fp32=info, tensors={k: [str(v.dtype), list(v.shape)] for k, v in t.items()})
        print(f"   {case}: S={info['seq_len']} fp32 tokens {info['generated'][:8]}... margin "
              f"{info['min_greedy_margin']:.4f}", flush=True)
    return meta


def add_mixed_cases() -> None:
    """--mixed-only: writes the MIXED_CASES files (the same a full run writes, from the committed models, inputs and
    single-item goldens) and adds them to meta.json, rewriting nothing else."""
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    processor = build_processor(build_tokenizer())
    image = Image.open(OUT / "inputs" / IMAGE_NAME).convert("RGB")
    frames = load_np(str(OUT / "inputs" / VIDEO_FRAMES_NAME))["frames"]
    kept_ids = load_np(str(OUT / "expected" / "cls_tied" / "image.safetensors"))["logits.kept_ids"]
    inputs, meta_inputs = mixed_case_inputs(processor, image, frames)
    meta = json.loads((OUT / "meta.json").read_text())
    meta["inputs"].update(meta_inputs)
    for name in MODELS:
        print(f"== {name}", flush=True)
        meta["models"][name]["cases"].update(write_mixed_goldens(load(OUT / name, torch.float32), name, inputs,
                                                                 kept_ids))
    meta["tensors"] = TENSOR_DOCS
    meta["files"] = file_list(OUT)
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("done", flush=True)


# ----------------------------------------------------------------------------------------------- driver


def kept_ids_for(prompt_ids: list[int]) -> np.ndarray:
    """Rows of embed_tokens / lm_head left nonzero: ids 0..2047, the 256 specials, and every prompt id."""
    kept = set(range(2048)) | set(range(128000, VOCAB_SIZE)) | set(prompt_ids)
    return np.array(sorted(kept), dtype=np.int32)


def file_list(path: Path) -> dict:
    out = {}
    for f in sorted(path.rglob("*")):
        if f.is_symlink():
            out[str(f.relative_to(OUT))] = "-> " + os.readlink(f)
        elif f.is_file():
            out[str(f.relative_to(OUT))] = f.stat().st_size
    return out


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    inputs_dir, expected_dir = OUT / "inputs", OUT / "expected"
    for d in (inputs_dir, expected_dir, OUT / "tokenizer"):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(OUT / "tokenizer")
    processor = build_processor(tokenizer)

    image = make_image()
    image.save(inputs_dir / IMAGE_NAME)
    image = Image.open(inputs_dir / IMAGE_NAME).convert("RGB")
    frames = make_video(inputs_dir / VIDEO_NAME)
    save_np({"frames": frames}, str(inputs_dir / VIDEO_FRAMES_NAME))
    media = {"image": image, "video": frames, "text": None}

    inputs, meta_inputs = {}, {}
    for case in CASES:
        inputs[case] = process(processor, case, media[case])
        arrays = {k: v.numpy().astype(np.int32 if k in ("input_ids", "attention_mask") else np.float32)
                  for k, v in inputs[case].items()}
        save_np(arrays, str(inputs_dir / f"{case}.safetensors"))
        rendered = processor.apply_chat_template(chat(case, media[case]), add_generation_prompt=True, tokenize=False)
        meta_inputs[case] = dict(
            file=f"inputs/{case}.safetensors", shapes={k: list(v.shape) for k, v in arrays.items()},
            rendered_prompt=rendered, conversation=json.loads(json.dumps(chat(case, None), default=str)),
            media={"image": IMAGE_NAME, "video": f"{VIDEO_NAME} (decoded: {VIDEO_FRAMES_NAME})"}.get(case),
            num_image_tokens=int((arrays["input_ids"] == 128002).sum()),
            num_video_tokens=int((arrays["input_ids"] == 128003).sum()))
    meta_inputs["image"]["tile_grid"] = tile_grid(processor.image_processor, image)
    meta_inputs["video"]["frames"] = "all 4 decoded frames (no frame sampling: num_frames/fps not passed)"
    kept_ids = kept_ids_for(sorted({i for x in inputs.values() for i in x["input_ids"][0].tolist()}))
    mixed_inputs, mixed_meta = mixed_case_inputs(processor, image, frames)
    meta_inputs.update(mixed_meta)

    meta_models = {}
    for name, spec in MODELS.items():
        print(f"== {name}", flush=True)
        model = PerceptionLMForConditionalGeneration(hf_config(spec)).eval()
        randomize(model, spec["seed"], kept_ids)
        model = model.to(torch.bfloat16)
        write_v5_dir(model, processor, OUT / name)
        hub45 = write_hub45_dir(OUT / name, OUT / spec["hub45_dir"], spec, list(model.state_dict()))
        del model

        fp32 = load(OUT / name, torch.float32)
        bf16 = load(OUT / name, torch.bfloat16)
        (expected_dir / name).mkdir()
        cases_meta = {}
        for case in CASES:
            t32, i32 = fp32_goldens(fp32, inputs[case], kept_ids)
            save_np(t32, str(expected_dir / name / f"{case}.safetensors"))
            check_goldens(OUT / name, spec, {k: v.numpy() for k, v in inputs[case].items()}, t32)
            t16, i16 = bf16_goldens(bf16, inputs[case])
            save_np(t16, str(expected_dir / name / f"{case}.bf16.safetensors"))
            i16["greedy_prefix_agreeing_with_fp32"] = common_prefix(t16["generate.tokens"], t32["generate.tokens"])
            shapes = {k: [str(v.dtype), list(v.shape)] for k, v in t32.items()}
            cases_meta[case] = dict(fp32=i32, bf16=i16, tensors=shapes)
            print(f"   {case}: S={i32['seq_len']} fp32 tokens {i32['generated'][:8]}... margin "
                  f"{i32['min_greedy_margin']:.4f}, bf16 prefix {i16['greedy_prefix_agreeing_with_fp32']}", flush=True)
        cases_meta.update(write_mixed_goldens(fp32, name, mixed_inputs, kept_ids))
        save_np(rope_tables(fp32, bf16), str(expected_dir / name / "rope_tables.safetensors"))
        vit32, vit16 = (m.model.vision_tower.timm_model.rope for m in (fp32, bf16))
        meta_models[name] = dict(
            layout_5x=name, layout_hub45=spec["hub45_dir"], hub45=hub45,
            config=json.loads((OUT / name / "config.json").read_text()),
            text_rope_llama3_regimes=rope_regimes(spec),
            text_inv_freq_fp32=fp32.model.language_model.rotary_emb.inv_freq.tolist(),
            vision_rope_table_dtype={"fp32_load": str(vit32.pos_embed.dtype), "bf16_load": str(vit16.pos_embed.dtype)},
            vision_mlp_hidden=int(fp32.model.vision_tower.timm_model.blocks[0].mlp.fc1.out_features),
            vision_num_prefix_tokens=int(fp32.model.vision_tower.timm_model.num_prefix_tokens),
            parameters=sum(p.numel() for p in fp32.parameters()),
            cases=cases_meta)
        del fp32, bf16

    verify_reload(inputs, media, expected_dir)
    write_meta(meta_inputs, meta_models, kept_ids)
    print("done", flush=True)


def verify_reload(inputs, media, expected_dir: Path) -> None:
    """Reloads every directory (both layouts) with transformers: processor output and logits must match."""
    for name, spec in MODELS.items():
        for directory in (name, spec["hub45_dir"]):
            processor = AutoProcessor.from_pretrained(OUT / directory)
            model = load(OUT / directory, torch.float32)
            for case in CASES:
                again = process(processor, case, media[case])
                assert again.keys() == inputs[case].keys(), (directory, case)
                for k in again:
                    assert torch.equal(again[k], inputs[case][k]), (directory, case, k)
                expected = load_np(str(expected_dir / name / f"{case}.safetensors"))
                with torch.no_grad():
                    logits = model(**again).logits[0].float()
                kept = torch.from_numpy(expected["logits.kept_ids"]).long()
                diff = max(float((logits[:, kept] - torch.from_numpy(expected["logits.kept"])).abs().max()),
                           float((logits[-2:] - torch.from_numpy(expected["logits.last2"])).abs().max()))
                assert diff <= 1e-6, (directory, case, diff)
                print(f"   reload {directory}/{case}: logits max |diff| {diff:.2e}", flush=True)


def write_meta(meta_inputs: dict, meta_models: dict, kept_ids: np.ndarray) -> None:
    meta = dict(
        generator="tools/reference/make_model_fixtures.py",
        versions=dict(python=sys.version.split()[0], torch=torch.__version__, transformers=transformers.__version__,
                      timm=timm.__version__, numpy=np.__version__, av=av.__version__),
        device="CPU (x86-64), torch default threads; no GPU",
        weights_dtype="bfloat16 (safetensors BF16)",
        fp32_goldens="from_pretrained(dir, dtype=torch.float32): bf16 weights widened exactly; attn sdpa (CPU)",
        bf16_goldens="from_pretrained(dir, dtype=torch.bfloat16) on CPU: NOT a CUDA/cuBLAS reference; compare "
                     "logits by tolerance and greedy tokens only up to the first step whose top-2 margin is below "
                     "bf16 resolution (exact bf16 ties occur; HF's argmax then takes the lowest id)",
        generation=f"greedy, {NUM_NEW_TOKENS} new tokens, stopping disabled (eos_token_id=None); first_stop_index "
                   f"says where HF would have stopped on {list(STOP_IDS)}",
        kept_ids=dict(rule="0..2047, 128000..128255 and every prompt id; embed_tokens (and untied lm_head) rows "
                           "outside are zero, so logits outside are exactly 0", count=int(kept_ids.size)),
        processor=dict(tile_size=TILE_SIZE, max_num_tiles=MAX_NUM_TILES, vision_input_type="thumb+tile",
                       patch_size=14, pooling_ratio=2, video_size=TILE_SIZE),
        tokenizer="tokenizer/ (one shared copy); every model dir holds tokenizer.json as a relative symlink to "
                  "../tokenizer/tokenizer.json",
        tensors=TENSOR_DOCS,
        inputs=meta_inputs,
        models=meta_models,
        files=file_list(OUT),
    )
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


# N = tiles (image: thumbnail + tiles) or frames; P = 1 prefix (CLS) token or 0; g = TILE_SIZE / 14 = 4; D = vision
# width; H = text hidden; S = prompt length; K = len(kept_ids); V = 128256.
TENSOR_DOCS = {
    "inputs/<case>.safetensors": "processor output: input_ids I32 [1,S], attention_mask I32 [1,S], pixel_values F32 "
                                 "[1,N,3,56,56] (image) / pixel_values_videos F32 [1,T,3,56,56] (video)",
    "inputs/<mixed case>.safetensors": "the same for two_images (pixel_values [2,N,3,56,56]: both images, N tiles "
                                       "each) and video_image (pixel_values and pixel_values_videos)",
    "expected/<model>/<case>.safetensors (fp32)": {
        "input_ids": "I32 [S]",
        "vision.patch_embed": "F32 [N, g*g, D] patch tokens after the conv, before CLS / pos_embed",
        "vision.norm_pre": "F32 [N, P+g*g, D] after CLS concat, + pos_embed, norm_pre",
        "vision.blocks.<i>": "F32 [N, P+g*g, D] output of block i",
        "vision.last_hidden_state": "F32 [N, P+g*g, D] vision tower output (= last block; no final norm)",
        "projector.pre_pool": "F32 [N, g*g, H] linear_2 output (CLS dropped when vision_use_cls_token)",
        "projector.output": "F32 [N, (g/2)^2, H] after 2x2 average pooling: the rows scattered into the prompt",
        "text.inputs_embeds": "F32 [S, H] embeddings after the image/video scatter",
        "text.layers.<l>": "F32 [S, H] output of decoder layer l (before the final norm)",
        "text.final_hidden": "F32 [S, H] after the final RMSNorm",
        "logits.kept_ids": "I32 [K] vocabulary ids with nonzero embedding / lm_head rows",
        "logits.kept": "F32 [S, K] logits of every prompt position at kept_ids (all other logits are exactly 0)",
        "logits.last2": "F32 [2, V] full logits of the last two prompt positions",
        "generate.tokens": "I32 [32] greedy new tokens (KV-cache decode, stopping disabled)",
        "generate.top2_logits": "F32 [32, 2] largest and second-largest logit at each generation step",
    },
    "expected/<model>/<mixed case>.safetensors (fp32; two_images, video_image)": {
        "input_ids": "I32 [S]",
        "text.inputs_embeds": "F32 [S, H] embeddings after the scatter of every image and video",
        "text.final_hidden": "F32 [S, H] after the final RMSNorm",
        "logits.kept_ids": "I32 [K] as above",
        "logits.last_kept": "F32 [K] logits of the last prompt position at kept_ids",
        "generate.tokens": "I32 [32] greedy new tokens (KV-cache decode, stopping disabled)",
        "generate.top2_logits": "F32 [32, 2] largest and second-largest logit at each generation step",
    },
    "expected/<model>/<case>.bf16.safetensors": {
        "generate.tokens": "I32 [32] greedy new tokens of the bf16 model",
        "generate.top2_logits": "F32 [32, 2] (bf16 values widened)",
        "logits.last": "F32 [V] bf16 logits of the last prompt position (generate's step 0, widened exactly)",
    },
    "expected/<model>/rope_tables.safetensors": {
        "vision.rope.pos_embed": "F32 [g*g, 2*hd_vision] timm's table of the fp32 load: [sin | cos], each hd wide, "
                                 "angles repeat-interleaved (x-axis bands, then y-axis bands), spec §2.3",
        "vision.rope.pos_embed.bf16_load": "the same table as held by the bf16 load (bf16 values, widened)",
        "vision.rope.bands": "F32 [hd_vision/4] timm's frequency bands",
        "text.inv_freq": "F32 [hd_text/2] HF's text inv_freq after the rope_type adjustment (llama3 or default)",
    },
}


if __name__ == "__main__":
    if sys.argv[1:] == ["--mixed-only"]:
        add_mixed_cases()
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--mixed-only]")
    else:
        main()
