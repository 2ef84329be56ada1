#!/usr/bin/env python3
"""Writes tests/fixtures/training/: a small SFT dataset (HF `messages` JSONL + media), what HF's processor makes of
it (token ids, both label masks, tiles / frames as uint8), and PyTorch training runs on the tiny fixture checkpoints
(tests/fixtures/models) by the rules of issue 18: per-step loss, grad norm, lr and labelled-token count, final fp32
weights, step-1 gradients, and LoRA / DoRA adapters trained by peft.

Everything is fp32 on CPU with one thread and deterministic algorithms, so two runs write identical bytes. The rules
(data, labels, loss, sample order, AdamW, clipping, schedule, freezing, LoRA) are documented in
tests/fixtures/training/README.md and tools/reference/README.md. Run from the repository root:
    .venv-ref/bin/python tools/reference/make_training_fixtures.py

Variants of the runs, to measure how far an fp32 implementation may drift from the fixtures (compare them with
tools/reference/compare_training_runs.py): `--out DIR` writes only the runs, to DIR/<run>/, from the committed sft/
data, leaving tests/fixtures/training untouched; with it `--dtype float64` trains the fp32-loaded model and inputs
widened to float64 (files then hold F64), `--reverse-accumulation` backpropagates each step's samples in reverse
order (another summation order of the gradients) and `--threads N` changes torch's thread count.
"""

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import peft
import timm
import torch
import torch.nn.functional as F
import transformers
import yaml
from peft import LoraConfig, get_peft_model
from safetensors.numpy import save_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.llama.modeling_llama import LlamaRMSNorm

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "training"
SFT = OUT / "sft"
RUNS = OUT / "runs"
MODELS = Path("tests") / "fixtures" / "models"  # relative to ROOT, as the run configs name them

VOCAB_SIZE = 128256
IMAGE_TOKEN, VIDEO_TOKEN, EOT_TOKEN = 128002, 128003, 128009
ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"
NUM_FRAMES = 4  # data.num_frames of every run
TOKENS_PER_TILE = 4  # (56 / 14 / pooling 2)^2
SUBSET_ROWS_SEED, SUBSET_RANDOM_ROWS = 20240611, 256
BIG_TABLES = ("model.language_model.embed_tokens.weight", "lm_head.weight")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Media files copied into sft/media/ (git stores identical blobs once).
MEDIA = {
    "image_150x100.png": "tests/fixtures/models/inputs/image_150x100.png",
    "grey_257x129.jpg": "tests/fixtures/preprocessing/inputs/grey_257x129.jpg",
    "palette4bit_trns_96x64.png": "tests/fixtures/preprocessing/inputs/palette4bit_trns_96x64.png",
    "video_64x48_4f.mp4": "tests/fixtures/models/inputs/video_64x48_4f.mp4",
    "mjpeg_72x40.avi": "tests/fixtures/preprocessing/inputs/mjpeg_72x40.avi",
}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def user(*content) -> dict:
    return {"role": "user", "content": list(content)}


def assistant(*content) -> dict:
    return {"role": "assistant", "content": list(content)}


# The dataset: 11 lines, so that with batch.global 4 every start offset occurs and steps 8, 11, 19, 22 (lines 6..9,
# 7..10) are text-only (no vision work, zero vision gradients); media paths relative to train.jsonl, every path key.
CONVERSATIONS = [
    [{"role": "system", "content": "You describe pictures in one sentence."},
     user({"type": "image", "path": "media/image_150x100.png"}, text("Describe this image.")),
     assistant(text("Colourful diagonal waves with a checkerboard and a few flat boxes."))],
    [user({"type": "video", "video": "media/video_64x48_4f.mp4"}, text("What moves in this video?")),
     assistant(text("A yellow square moves down and to the right."))],
    [user({"type": "image", "path": "media/grey_257x129.jpg"},
          {"type": "image", "path": "media/palette4bit_trns_96x64.png"}, text("How do these two pictures differ?")),
     {"role": "assistant", "content": "The first is grey; the second is a small palette image."}],
    [{"role": "system", "content": "You are a terse assistant."},
     user(text("What is the capital of France?")), assistant(text("Paris.")),
     user(text("And of Italy?")), assistant(text("Rome."))],
    [user(text("Look at this clip."), {"type": "video", "url": "media/mjpeg_72x40.avi"},
          text(" How many frames do you see? ")),
     assistant(text("I see four frames of a short clip."))],
    [user({"type": "image", "image": "media/palette4bit_trns_96x64.png"}, text("Which colours dominate?")),
     assistant(text("Mostly blue and red, in a café-like palette.")),
     user(text("Thanks!")), assistant(text("You're welcome. \n"))],
    [{"role": "user", "content": "Write a haiku about rain."},
     assistant(text("Soft rain on the roof\nwhispers to the sleeping town\nmorning comes slowly"))],
    [user(text("Give me three prime numbers.")), assistant(text("2, 3 and 5."))],
    [{"role": "system", "content": "Answer in French."}, user(text("Good morning!")), assistant(text("Bonjour !"))],
    [user(text("Add 17 and 25.")), assistant(text("17 + 25 = 42.")), user(text("Now double it.")),
     assistant(text("84."))],
    [user(text("Name a colour.")), assistant(text("Teal."))],
]

BASE_OPTIMIZER = {"betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
NO_FREEZE = {"vision": False, "projector": False, "llm": False}

# The runs. grad_clip is chosen between the smallest and largest grad norm of each run, so clipping is active on
# some steps and not on others (the script asserts both).
RUNS_SPEC = {
    "full_cls_tied": dict(model="cls_tied", batch=4, steps=24, lr=2e-3, min_lr=2e-4, warmup=3, grad_clip=10.0,
                          freeze=NO_FREEZE, labels="assistant", grad_steps=(1,)),
    "freeze_vision_cls_tied": dict(model="cls_tied", batch=4, steps=24, lr=2e-3, min_lr=2e-4, warmup=3,
                                   grad_clip=10.0, freeze=dict(NO_FREEZE, vision=True), labels="assistant"),
    "full_nocls_untied": dict(model="nocls_untied", batch=2, steps=24, lr=2e-3, min_lr=2e-4, warmup=3,
                              grad_clip=25.0, freeze=NO_FREEZE, labels="assistant", grad_steps=(1,)),
    "freeze_llm_all_but_media_cls_tied": dict(model="cls_tied", batch=4, steps=20, lr=1e-2, min_lr=1e-3, warmup=2,
                                              grad_clip=0.4, freeze=dict(NO_FREEZE, llm=True),
                                              labels="all_but_media"),
    "lora_cls_tied": dict(model="cls_tied", batch=4, steps=24, lr=1e-2, min_lr=1e-3, warmup=3, grad_clip=1.8,
                          freeze=NO_FREEZE, labels="assistant", lora=dict(rank=4, alpha=8, dropout=0.0, dora=False),
                          grad_steps=(1, 2)),
    "dora_cls_tied": dict(model="cls_tied", batch=4, steps=24, lr=1e-2, min_lr=1e-3, warmup=3, grad_clip=1.8,
                          freeze=NO_FREEZE, labels="assistant", lora=dict(rank=4, alpha=8, dropout=0.0, dora=True),
                          grad_steps=(1, 2)),
}
SEED = 1234


def save_np(arrays: dict[str, np.ndarray], path: Path) -> None:
    """safetensors.numpy stores an array's memory as is: make every array contiguous first."""
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- data


def write_dataset() -> Path:
    (SFT / "media").mkdir(parents=True)
    for name, source in MEDIA.items():
        shutil.copyfile(ROOT / source, SFT / "media" / name)
    path = SFT / "train.jsonl"
    lines = [json.dumps({"messages": conv}, ensure_ascii=False) for conv in CONVERSATIONS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


MEDIA_KEYS = {"image": ("path", "url", "image"), "video": ("path", "url", "video")}


def to_hf_messages(messages: list[dict], base: Path) -> tuple[list[dict], list[dict]]:
    """The loader's normalisation before the chat template: media items get an absolute `path` (from `path`, `url`
    or `image`/`video`, relative to the JSONL); user / assistant string content becomes one text item (PLM's
    template renders only list items: a bare string would vanish); system content stays a string (the template
    trims it). Returns the HF messages and the media in template order (per message: images, then videos)."""
    out, media = [], []
    for m in messages:
        content = m["content"]
        if m["role"] == "system":
            assert isinstance(content, str), "system content must be a string"
            out.append({"role": "system", "content": content})
            continue
        items = [text(content)] if isinstance(content, str) else []
        for item in content if isinstance(content, list) else []:
            if item["type"] == "text":
                items.append(text(item["text"]))
                continue
            key = next(k for k in MEDIA_KEYS[item["type"]] if k in item)
            rel = item[key]
            items.append({"type": item["type"], "path": str(base / rel)})
        for kind in ("image", "video"):
            media += [{"type": kind, "path": str(Path(i["path"]).relative_to(base))}
                      for i in items if i["type"] == kind]
        out.append({"role": m["role"], "content": items})
    return out, media


def assistant_char_spans(processor, messages: list[dict], rendered: str) -> list[tuple[int, int]]:
    """Character span of each assistant message's labelled text in the rendered prompt: its content and closing
    <|eot_id|>, without the header. Found by rendering growing prefixes of the conversation."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        assert i > 0, "a conversation cannot open with an assistant turn"
        before = processor.apply_chat_template(messages[:i], tokenize=False)
        after = processor.apply_chat_template(messages[:i + 1], tokenize=False)
        assert rendered.startswith(after) and after.startswith(before)
        assert after[len(before):].startswith(ASSISTANT_HEADER) and after.endswith("<|eot_id|>")
        spans.append((len(before) + len(ASSISTANT_HEADER), len(after)))
    return spans


def assistant_token_mask(processor, rendered: str, spans) -> tuple[list[int], list[int]]:
    """Tokens of the rendered prompt (one placeholder per medium) and their assistant label mask, from the fast
    tokenizer's offset mapping. Every token lies wholly inside or wholly outside each span, the labelled tokens of a
    span are consecutive and end with <|eot_id|>."""
    enc = processor.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [0] * len(ids)
    for start, end in spans:
        inside = []
        for t, (a, b) in enumerate(offsets):
            if a >= start and b <= end:
                inside.append(t)
            else:
                assert b <= start or a >= end, f"token {t} {offsets[t]} straddles label span {(start, end)}"
        assert inside == list(range(inside[0], inside[-1] + 1)) and ids[inside[-1]] == EOT_TOKEN
        assert offsets[inside[0]][0] == start and offsets[inside[-1]][1] == end
        for t in inside:
            mask[t] = 1
    return ids, mask


def expand_placeholders(ids: list[int], mask: list[int], tokens_per_medium: list[int]) -> tuple[list[int], list[int]]:
    """Expands each <|image|> / <|video|> into its run of placeholder tokens (never labelled)."""
    out_ids, out_mask, counts = [], [], iter(tokens_per_medium)
    for t, m in zip(ids, mask):
        if t in (IMAGE_TOKEN, VIDEO_TOKEN):
            assert m == 0
            n = next(counts)
            out_ids += [t] * n
            out_mask += [0] * n
        else:
            out_ids.append(t)
            out_mask.append(m)
    assert next(counts, None) is None
    return out_ids, out_mask


def to_u8(pixels: torch.Tensor) -> np.ndarray:
    """HF's pixel values are exactly (u8 - 127.5) / 127.5 of the resize output; returns the u8 levels (asserted)."""
    u8 = torch.round(pixels * 127.5 + 127.5)
    assert torch.equal((u8 - 127.5) / 127.5, pixels) and u8.min() >= 0 and u8.max() <= 255
    return u8.to(torch.uint8).numpy()


def load_samples(processor, jsonl: Path) -> list[dict]:
    """Every JSONL line through HF's processor (the checkpoint's chat template, no generation prompt, media loaded
    by HF from their paths, NUM_FRAMES frames per video), with both label masks."""
    samples = []
    for line_no, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines()):
        messages, media = to_hf_messages(json.loads(line)["messages"], jsonl.parent)
        rendered = processor.apply_chat_template(messages, tokenize=False)
        inputs = processor.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"num_frames": NUM_FRAMES, "return_metadata": True})
        metadata = list(inputs.pop("video_metadata", []) or [])
        images = inputs.get("pixel_values", torch.zeros(0, 1, 3, 56, 56))
        videos = inputs.get("pixel_values_videos", torch.zeros(0, 1, 3, 56, 56))
        image_items = [m for m in media if m["type"] == "image"]
        video_items = [m for m in media if m["type"] == "video"]
        assert len(image_items) == images.shape[0] and len(video_items) == videos.shape[0] == len(metadata)
        for item, pixels in zip(image_items, images):
            item["tiles"] = int(pixels.shape[0])
        for item, pixels, meta in zip(video_items, videos, metadata):
            item.update(frames=int(pixels.shape[0]), total_frames=int(meta.total_num_frames),
                        frame_indices=[int(i) for i in meta.frames_indices])
        # Placeholders expand in template order: a message's images, then its videos; messages in order.
        per_medium = [TOKENS_PER_TILE * (m["tiles"] if m["type"] == "image" else m["frames"]) for m in media]
        spans = assistant_char_spans(processor, messages, rendered)
        raw_ids, raw_mask = assistant_token_mask(processor, rendered, spans)
        ids, assistant_mask = expand_placeholders(raw_ids, raw_mask, per_medium)
        assert ids == inputs["input_ids"][0].tolist(), f"line {line_no}: expanded ids differ from the processor's"
        all_but_media = [0] + [int(t not in (IMAGE_TOKEN, VIDEO_TOKEN)) for t in ids[1:]]
        samples.append(dict(
            line=line_no, rendered=rendered, media=media, input_ids=ids,
            labels={"assistant": assistant_mask, "all_but_media": all_but_media},
            pixel_values=images if images.shape[0] else None,
            pixel_values_videos=videos if videos.shape[0] else None))
    return samples


def write_expected_samples(samples: list[dict]) -> None:
    records, pixels = [], {}
    for s in samples:
        records.append(dict(
            line=s["line"], rendered=s["rendered"], num_tokens=len(s["input_ids"]), media=s["media"],
            image_tiles=[m["tiles"] for m in s["media"] if m["type"] == "image"],
            video_frames=[m["frames"] for m in s["media"] if m["type"] == "video"],
            num_labelled={k: sum(v) for k, v in s["labels"].items()},
            input_ids=s["input_ids"],
            labels_assistant="".join(map(str, s["labels"]["assistant"])),
            labels_all_but_media="".join(map(str, s["labels"]["all_but_media"]))))
        if s["pixel_values"] is not None:
            pixels[f"{s['line']}.pixel_values_u8"] = to_u8(s["pixel_values"])
        if s["pixel_values_videos"] is not None:
            pixels[f"{s['line']}.pixel_values_videos_u8"] = to_u8(s["pixel_values_videos"])
    write_json(SFT / "expected_samples.json", dict(
        generator="tools/reference/make_training_fixtures.py", num_frames=NUM_FRAMES,
        placeholder_tokens_per_tile_or_frame=TOKENS_PER_TILE,
        masks="labels_* are strings of 0/1, one character per token of input_ids; 1 = the token is a target "
              "(predicted by the logits of the previous position)",
        samples=records))
    save_np(pixels, SFT / "expected_pixels.safetensors")


# ----------------------------------------------------------------------------------------------- model


def load_model(name: str):
    model = AutoModelForImageTextToText.from_pretrained(str(MODELS / name), dtype=torch.float32)
    model.config.use_cache = False
    model.train()  # no dropout / drop-path anywhere in these configs (asserted): train == eval numerically
    for module in model.modules():
        p = getattr(module, "p", getattr(module, "drop_prob", 0.0))
        assert not isinstance(p, float) or p == 0.0, module
    return model


def rms_norm_in_input_dtype(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """LlamaRMSNorm.forward without its cast to fp32 (HF computes the norm in fp32 whatever the model's dtype):
    the same operations in the input's dtype, so that a float64 run has no fp32 step left in the decoder."""
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def apply_freeze(model, freeze: dict) -> None:
    """freeze.vision = the timm tower, freeze.projector = multi_modal_projector, freeze.llm = the language model
    (embed_tokens, layers, final norm) and lm_head (the same tensor as embed_tokens when tied)."""
    parts = {"vision": [model.model.vision_tower], "projector": [model.model.multi_modal_projector],
             "llm": [model.model.language_model, model.lm_head]}
    for part, frozen in freeze.items():
        for module in parts[part] if frozen else []:
            module.requires_grad_(False)


def apply_lora(model, lora: dict):
    """peft LoRA / DoRA on the decoder's seven projections. The names q_proj..down_proj exist only in the decoder:
    timm's PE blocks use attn.qkv / attn.proj / mlp.fc1 / mlp.fc2 and the projector linear_1 / linear_2 (asserted)."""
    torch.manual_seed(SEED)
    config = LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=LORA_TARGETS, use_dora=lora["dora"])
    wrapped = get_peft_model(model, config)
    hit = sorted(n for n, m in wrapped.named_modules() if hasattr(m, "lora_A"))
    block = {t: "self_attn" if t in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp" for t in LORA_TARGETS}
    expected = sorted(f"base_model.model.model.language_model.layers.{layer}.{block[t]}.{t}"
                      for layer in range(model.config.text_config.num_hidden_layers) for t in LORA_TARGETS)
    assert hit == expected, hit
    return wrapped


def forward_logits(model, sample: dict) -> torch.Tensor:
    kwargs = {"input_ids": torch.tensor([sample["input_ids"]])}
    for key in ("pixel_values", "pixel_values_videos"):  # fp32 pixels, widened for a float64 model
        if sample[key] is not None:
            kwargs[key] = sample[key].to(model.dtype)
    return model(**kwargs, use_cache=False).logits[0]  # (S, V) in the model's dtype


def ce_sum(logits: torch.Tensor, sample: dict, labels: str) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropies over the labelled tokens: token i (labelled) is predicted by logits[i-1]."""
    mask = torch.tensor(sample["labels"][labels], dtype=torch.bool)
    assert not mask[0]
    targets = torch.tensor(sample["input_ids"])
    positions = torch.nonzero(mask[1:]).flatten()  # i - 1 for each labelled i
    return F.cross_entropy(logits[positions], targets[positions + 1], reduction="sum"), int(mask.sum())


def check_against_hf_loss(model, samples: list[dict]) -> None:
    """Our per-sample sum / count equals HF's own loss with labels = ids, -100 where unlabelled (HF shifts)."""
    with torch.no_grad():
        for s in samples:
            for labels in ("assistant", "all_but_media"):
                total, count = ce_sum(forward_logits(model, s), s, labels)
                hf_labels = torch.tensor([[t if m else -100 for t, m in zip(s["input_ids"], s["labels"][labels])]])
                kwargs = {"input_ids": torch.tensor([s["input_ids"]]), "labels": hf_labels, "use_cache": False}
                for key in ("pixel_values", "pixel_values_videos"):
                    if s[key] is not None:
                        kwargs[key] = s[key]
                hf = model(**kwargs).loss
                assert abs(float(total) / count - float(hf)) <= 1e-5 * abs(float(hf)), (s["line"], labels)


# ----------------------------------------------------------------------------------------------- training


def lr_at(step: int, spec: dict) -> float:
    """Warmup then cosine (issue 18): k <= W: lr*k/W; else min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi (k-W)/(S-W)))."""
    lr, min_lr, warmup, steps = spec["lr"], spec["min_lr"], spec["warmup"], spec["steps"]
    if step <= warmup:
        return lr * step / warmup
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def subset_rows(samples: list[dict]) -> np.ndarray:
    """Rows kept of the 128256-row tables: every id in the data plus 256 fixed random rows."""
    data_ids = {t for s in samples for t in s["input_ids"]}
    rng = np.random.default_rng(SUBSET_ROWS_SEED)
    random_ids = set(rng.choice(VOCAB_SIZE, SUBSET_RANDOM_ROWS, replace=False).tolist())
    return np.array(sorted(data_ids | random_ids), dtype=np.int32)


def tensors_for_file(named: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Arrays in the run's dtype (fp32 for the fixtures); a 128256-row table becomes <name>.rows (I32 [R]),
    <name>.values ([R, H]) and <name>.row_norms ([V], the L2 norm of every row of the whole table)."""
    out = {}
    for name, t in named.items():
        t = t.detach()
        if name in BIG_TABLES:
            out[f"{name}.rows"] = rows
            out[f"{name}.values"] = t[torch.from_numpy(rows).long()].numpy()
            out[f"{name}.row_norms"] = torch.linalg.vector_norm(t, dim=1).numpy()
        else:
            out[name] = t.numpy()
    return out


class ConfigDumper(yaml.SafeDumper):
    """Block maps, flow lists of scalars (`betas: [0.9, 0.95]`)."""


ConfigDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def run_config(name: str, spec: dict) -> dict:
    """The run as a `plm train` YAML config (issue 18 key names; dotted keys are nested maps)."""
    config = {
        "model": str(MODELS / spec["model"]),
        "data": {"train": "tests/fixtures/training/sft/train.jsonl", "shuffle": False, "num_frames": NUM_FRAMES,
                 "labels": spec["labels"]},
        "seed": SEED,
        "steps": spec["steps"],
        "batch": {"global": spec["batch"], "micro": 1},
        "optimizer": {"lr": spec["lr"], **BASE_OPTIMIZER, "grad_clip": spec["grad_clip"]},
        "schedule": {"name": "cosine", "warmup_steps": spec["warmup"], "min_lr": spec["min_lr"]},
        "freeze": dict(spec["freeze"]),
        "device": "cpu",
        "output_dir": f"out/{name}",
    }
    if "lora" in spec:
        config["lora"] = {**spec["lora"], "targets": list(LORA_TARGETS)}
    return config


def train(name: str, spec: dict, samples: list[dict], rows: np.ndarray, runs_dir: Path, dtype: torch.dtype,
          reverse_accumulation: bool) -> dict:
    torch.manual_seed(SEED)
    model = load_model(spec["model"])
    if "lora" in spec:
        model = apply_lora(model, spec["lora"])
    else:
        apply_freeze(model, spec["freeze"])
    model.to(dtype)  # after peft's fp32 init: a float64 run starts from exactly the fixture's weights
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in trainable]
    for p in params:  # every trainable parameter has a gradient (zero when unused) and is updated every step
        p.grad = torch.zeros_like(p)
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim >= 2], "weight_decay": BASE_OPTIMIZER["weight_decay"]},
         {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
        lr=spec["lr"], betas=tuple(BASE_OPTIMIZER["betas"]), eps=BASE_OPTIMIZER["eps"], foreach=False, fused=False)
    out_dir = runs_dir / name
    out_dir.mkdir(parents=True)
    if "lora" in spec:
        save_adapter(model, out_dir / "initial_adapter")

    steps, n, g = [], len(samples), spec["batch"]
    for k in range(1, spec["steps"] + 1):
        indices = [((k - 1) * g + j) % n for j in range(g)]
        counts = [sum(samples[i]["labels"][spec["labels"]]) for i in indices]
        total_count = sum(counts)
        sums = {}
        for i in reversed(indices) if reverse_accumulation else indices:
            loss_sum, _ = ce_sum(forward_logits(model, samples[i]), samples[i], spec["labels"])
            if loss_sum.requires_grad:  # not when freeze.llm meets a text-only sample: no trainable parameter used
                (loss_sum / total_count).backward()
            sums[i] = loss_sum.detach()
        sums = [sums[i] for i in indices]
        loss = torch.stack(sums).sum() / total_count
        if k in spec.get("grad_steps", ()):  # the summed gradient before clipping
            save_np(tensors_for_file({nm: p.grad for nm, p in trainable}, rows), out_dir / f"grads_step{k}.safetensors")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, spec["grad_clip"], foreach=False)
        lr = lr_at(k, spec)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        for p in params:
            p.grad.zero_()
        steps.append(dict(step=k, samples=indices, loss=float(loss), grad_norm=float(grad_norm), lr=lr,
                          clip_coef=min(1.0, spec["grad_clip"] / (float(grad_norm) + 1e-6)), tokens=total_count,
                          sample_loss_sums=[float(s) for s in sums], sample_tokens=counts))
        print(f"   {name} step {k:2d}: loss {float(loss):.6f} grad_norm {float(grad_norm):.4f} lr {lr:.6f} "
              f"tokens {total_count}", flush=True)

    norms = [s["grad_norm"] for s in steps]
    assert min(norms) < spec["grad_clip"] < max(norms), f"{name}: clipping must be active on some steps only {norms}"
    assert steps[-1]["loss"] < steps[0]["loss"], f"{name}: loss did not fall"
    if "lora" in spec:
        save_adapter(model, out_dir / "final_adapter")
        merged = model.merge_and_unload()
        suffixes = tuple(f"{t}.weight" for t in LORA_TARGETS)
        targets = {nm: p for nm, p in merged.named_parameters() if nm.endswith(suffixes)}
        save_np(tensors_for_file(targets, rows), out_dir / "final_merged_targets.safetensors")
    else:
        save_np(tensors_for_file({nm: p for nm, p in trainable}, rows), out_dir / "final.safetensors")
    (out_dir / "config.yaml").write_text(yaml.dump(run_config(name, spec), Dumper=ConfigDumper, sort_keys=False,
                                                   default_flow_style=False))
    metrics = dict(
        run=name, steps=steps,
        trainable=[dict(name=nm, shape=list(p.shape), weight_decay=p.ndim >= 2) for nm, p in trainable],
        trainable_numel=sum(p.numel() for p in params))
    write_json(out_dir / "metrics.json", metrics)
    return dict(first_loss=steps[0]["loss"], last_loss=steps[-1]["loss"],
                clipped_steps=sum(s["clip_coef"] < 1 for s in steps))


def save_adapter(model, path: Path) -> None:
    """peft's adapter directory (adapter_config.json + adapter_model.safetensors, fp32), without peft's README and
    with target_modules sorted (peft writes a set: its order changes from run to run)."""
    model.save_pretrained(str(path))
    (path / "README.md").unlink()
    config = json.loads((path / "adapter_config.json").read_text())
    config["target_modules"] = sorted(config["target_modules"])
    (path / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------- driver


def file_list() -> dict:
    """Every file of sft/ and runs/ with its size."""
    return {str(f.relative_to(OUT)): f.stat().st_size for d in (SFT, RUNS) for f in sorted(d.rglob("*"))
            if f.is_file()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write only the runs, to OUT/<run>/ (default: the fixtures)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--reverse-accumulation", action="store_true",
                        help="backpropagate each step's samples in reverse order")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    variant = args.dtype != "float32" or args.reverse_accumulation or args.threads != 1
    if variant and args.out is None:
        parser.error("--dtype, --reverse-accumulation and --threads change the runs: they need --out")
    return args


def write_variant_runs(args: argparse.Namespace) -> None:
    """The runs only, from the committed sft/ data, into args.out/<run>/ (replacing those folders only)."""
    out = args.out.resolve()
    assert out != RUNS.resolve(), "--out must not be the fixtures' runs/ folder"
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    samples = load_samples(AutoProcessor.from_pretrained(str(MODELS / "cls_tied")), SFT / "train.jsonl")
    rows = subset_rows(samples)
    dtype = getattr(torch, args.dtype)
    if dtype == torch.float64:
        LlamaRMSNorm.forward = rms_norm_in_input_dtype
    summary = {}
    for name, spec in RUNS_SPEC.items():
        print(f"== {name}", flush=True)
        shutil.rmtree(out / name, ignore_errors=True)
        summary[name] = train(name, spec, samples, rows, out, dtype, args.reverse_accumulation)
    write_json(out / "variant.json", dict(dtype=args.dtype, reverse_accumulation=args.reverse_accumulation,
                                          threads=args.threads, runs=summary))


def main() -> None:
    args = parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    if args.out is not None:
        write_variant_runs(args)
        return
    os.chdir(ROOT)
    shutil.rmtree(SFT, ignore_errors=True)
    shutil.rmtree(RUNS, ignore_errors=True)
    (OUT / "manifest.json").unlink(missing_ok=True)

    jsonl = write_dataset()
    processor = AutoProcessor.from_pretrained(str(MODELS / "cls_tied"))
    samples = load_samples(processor, jsonl)
    for other in ("nocls_untied",):  # the processors of both checkpoints are identical
        again = load_samples(AutoProcessor.from_pretrained(str(MODELS / other)), jsonl)
        assert all(a["input_ids"] == b["input_ids"] for a, b in zip(samples, again))
    write_expected_samples(samples)
    print(f"== {len(samples)} samples, tokens {[len(s['input_ids']) for s in samples]}", flush=True)

    check_against_hf_loss(load_model("cls_tied"), samples)
    rows = subset_rows(samples)
    summary = {}
    for name, spec in RUNS_SPEC.items():
        print(f"== {name}", flush=True)
        summary[name] = train(name, spec, samples, rows, RUNS, torch.float32, reverse_accumulation=False)
    write_json(OUT / "manifest.json", dict(
        generator="tools/reference/make_training_fixtures.py",
        versions=dict(python=sys.version.split()[0], torch=torch.__version__, transformers=transformers.__version__,
                      timm=timm.__version__, peft=peft.__version__, numpy=np.__version__),
        device="CPU, fp32, torch.set_num_threads(1), torch.use_deterministic_algorithms(True)",
        subset_rows=dict(count=int(rows.size), rule="every token id of the data + 256 rows drawn by "
                         f"numpy default_rng({SUBSET_ROWS_SEED}).choice(128256, 256, replace=False)"),
        runs=summary, files=file_list()))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
