#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/<target>/ from the repository's fixtures and a few hand-made
inputs (python3 standard library only). Each seed is what its fuzz target reads: for the targets with modes, the
first byte picks the mode as the target's header comment says ('0', '1', ...). Rerun after changing a target's
input format: python3 fuzz/make_corpus.py (it replaces every corpus folder)."""

import base64
import json
import pathlib
import shutil
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
FIXTURES = ROOT / "tests" / "fixtures"
MODELS = FIXTURES / "models"
PREPROCESSING = FIXTURES / "preprocessing" / "inputs"


def fixture(path):
    return (ROOT / path).read_bytes()


def safetensors(tensors, metadata=None):
    """A safetensors file: tensors is a list of (name, dtype, shape, data bytes)."""
    header, offset, data = {}, 0, b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        offset += len(payload)
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def http(method, target, body=b"", headers=()):
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1:8000", *headers]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def seeds():
    chat = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "image", "url": "image.png"}, {"type": "text", "text": "What is it?"}]},
            {"role": "assistant", "content": "A picture."},
            {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "clip.mp4"}},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                         {"type": "text", "text": " And this? "}]}]
    tiny_png = (PREPROCESSING / "tiny_5x3.png").read_bytes()
    data_url = "data:image/png;base64," + base64.b64encode(tiny_png).decode()
    chat_body = lambda messages, **extra: json.dumps({"model": "cls_tied", "messages": messages, **extra}).encode()

    yield "safetensors", "text_inputs", b"0" + fixture("tests/fixtures/models/inputs/text.safetensors")
    yield "safetensors", "dtypes", b"0" + safetensors(
        [("f32", "F32", [2, 2], bytes(16)), ("bf16", "BF16", [3], bytes(6)), ("i64", "I64", [1], bytes(8)),
         ("empty", "F16", [0, 5], b""), ("scalar", "U8", [], b"\x07")], {"format": "pt"})
    yield "safetensors", "index", b"1" + json.dumps(
        {"metadata": {"total_size": 36}, "weight_map": {"a": "shard-a.safetensors", "b": "shard-a.safetensors",
                                                        "c": "shard-b.safetensors"}}).encode()
    yield "safetensors", "index_hub45", b"1" + fixture(
        "tests/fixtures/models/nocls_untied_hub45/model.safetensors.index.json")

    for layout in ("cls_tied", "cls_tied_hub45", "nocls_untied", "nocls_untied_hub45"):
        yield "model_config", f"config_{layout}", b"0" + fixture(f"tests/fixtures/models/{layout}/config.json")
    for name in ("plm-1b", "plm-8b"):
        yield "model_config", f"config_{name}", b"0" + fixture(f"configs/{name}/config.json")
    yield "model_config", "generation", b"1" + fixture("tests/fixtures/models/cls_tied/generation_config.json")
    yield "model_config", "generation_plm-1b", b"1" + fixture("configs/plm-1b/generation_config.json")
    yield "model_config", "preprocessor_hub45", b"2" + fixture("tests/fixtures/models/cls_tied_hub45/preprocessor_config.json")
    yield "model_config", "preprocessor_plm-1b", b"2" + fixture("configs/plm-1b/preprocessor_config.json")
    yield "model_config", "processor_v5", b"3" + fixture("tests/fixtures/models/cls_tied/processor_config.json")
    yield "model_config", "processor_hub45", b"3" + fixture("tests/fixtures/models/cls_tied_hub45/processor_config.json")

    edge_cases = fixture("tests/fixtures/tokenizer/llama3_edge_cases.inp").split(b"\n__ggml_vocab_test__\n")
    for i, text in enumerate(edge_cases[:24]):
        yield "tokenizer", f"text_{i:02d}", (b"0" if i % 2 == 0 else b"1") + text
    yield "tokenizer", "specials", b"0<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|image|>"
    yield "tokenizer", "invalid_utf8", b"1\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x9a\x80 \xed\xa0\x80"
    yield "tokenizer", "ids", b"2" + struct.pack("<8I", 9468, 248, 222, 128000, 128009, 128255, 15339, 1917)

    yield "chat_prompt", "text_messages", b"0" + fixture("tests/fixtures/models/inputs/text_messages.json")
    yield "chat_prompt", "media_messages", b"0" + json.dumps(chat).encode()
    yield "chat_prompt", "string_content", b"0" + json.dumps([{"role": "user", "content": "  Hi\u3000 "}]).encode()
    for i, line in enumerate(fixture("tests/fixtures/training/sft/train.jsonl").splitlines()[:6]):
        yield "chat_prompt", f"sft_line_{i}", (b"1" if i % 2 == 0 else b"3") + line

    hello = chat_body([{"role": "user", "content": "Hello"}], max_tokens=4)
    yield "http_request", "health", http("GET", "/health")
    yield "http_request", "models_keyed", http("GET", "/v1/models?x=1", headers=["Authorization: Bearer fuzz-key"])
    yield "http_request", "chat", http("POST", "/v1/chat/completions", hello, ["Authorization: Bearer fuzz-key"])
    yield "http_request", "completion", http("POST", "/v1/completions", b'{"prompt": "Hi", "stream": true}')
    yield "http_request", "chunked_expect", http("POST", "/v1/chat/completions", headers=[
        "Transfer-Encoding: chunked", "Expect: 100-continue", "Content-Type: application/json"]) + chunked(hello)
    yield "http_request", "pipelined", http("GET", "/metrics") + http("POST", "/v1/completions", b'{"prompt":"a"}') + \
        http("GET", "/health", headers=["Connection: close"])

    yield "openai_request", "chat_text", b"0" + hello
    yield "openai_request", "chat_media", b"0" + chat_body(chat, stream=True, stream_options={"include_usage": True},
                                                            stop=["\n", "END"], seed=7, temperature=0.5, top_p=0.9)
    yield "openai_request", "chat_data_url", b"0" + chat_body(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}}, {"type": "text", "text": "?"}]}])
    yield "openai_request", "chat_paths", b"0" + chat_body([{"role": "developer", "content": "Be brief."}, {
        "role": "user", "content": [{"type": "image", "url": u} for u in
                                    ("sub/inner.png", "link_in", "link_out", "../outside/secret.png",
                                     "file:///etc/passwd", "file://localhost/tmp/%2e%2e/x.png", "https://example.com/a.png")]}])
    yield "openai_request", "completion", b"1" + json.dumps(
        {"prompt": ["Once upon"], "max_tokens": 8, "top_k": 5, "n": 1, "logprobs": False, "stop": "."}).encode()

    for name in ("tiny_5x3.png", "palette4bit_trns_96x64.png", "huge_header_100000x100000.png",
                 "huge_header_65000x65000.jpg", "exif_rot6_160x100.jpg", "grey_alpha_150x100.png",
                 "exif_rot3_90x60.png", "palette_200x150.png", "cmyk_120x80.jpg"):
        yield "image", name.rsplit(".", 1)[0], (PREPROCESSING / name).read_bytes()

    video = fixture("tests/fixtures/models/inputs/video_64x48_4f.mp4")
    for mode in b"012":
        yield "video", f"mp4_4f_{chr(mode)}", bytes([mode]) + video
    yield "video", "zero_frames_avi", b"0" + (PREPROCESSING / "zero_frames.avi").read_bytes()
    yield "video", "vp9_webm", b"1" + (PREPROCESSING / "vp9_96x64.webm").read_bytes()

    for path in ("configs/train/tiny-sft.yaml", "configs/train/plm-1b-sft.yaml",
                 "tests/fixtures/training/runs/lora_cls_tied/config.yaml",
                 "tests/fixtures/training/runs/dora_cls_tied/config.yaml"):
        yield "train_config", pathlib.Path(path).parent.name + "_" + pathlib.Path(path).stem, fixture(path)
    yield "train_config", "overrides", fixture("configs/train/tiny-sft.yaml") + \
        b"\0optimizer.lr=0.1\nlayout.dp=2\nschedule.name=wsd\nschedule.decay_steps=5\noptimizer.betas=[0.8,0.9]\n"

    crc = zlib.crc32(b"abcd")  # the checkpoint_manifest target's model-rank00000.safetensors holds "abcd"
    marker = {"step": 1, "layout": {"tp": 1, "pp": 1, "dp": 1, "zero": 0},
              "files": {"model-rank00000.safetensors": {"bytes": 4, "crc32": crc}}}
    yield "checkpoint_manifest", "complete", b"0" + json.dumps(marker).encode()
    yield "checkpoint_manifest", "complete_wrong_crc", b"0" + json.dumps(
        dict(marker, step=1, files={"model-rank00000.safetensors": {"bytes": 4, "crc32": crc ^ 1}})).encode()
    yield "checkpoint_manifest", "train_state", b"1" + json.dumps(
        {"step": 10, "lr_step": 10, "data_position": 40, "rng_seed": 1234, "rng_offset": 77, "elapsed_s": 12.5}).encode()
    lora = json.loads(fixture("tests/fixtures/training/runs/lora_cls_tied/final_adapter/adapter_config.json"))
    yield "checkpoint_manifest", "run_lora", b"2" + json.dumps(
        {"model": "tests/fixtures/models/cls_tied", "data.train": "train.jsonl", "batch.global": 4, "seed": 1,
         "freeze": {"vision": False, "projector": False, "llm": False}, "lora": lora}).encode()
    yield "checkpoint_manifest", "run_full", b"2" + json.dumps({"model": "m", "lora": None, "seed": 3}).encode()


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    for target, name, data in seeds():
        path = CORPUS / target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
