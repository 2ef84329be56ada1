"""HF transformers' own bf16 deviation on the golden fixtures: the max |logit(bf16) - logit(f32)| over the prompt
plus HF's greedy continuation, per fixture, next to the largest |logit|. tests/model/bf16_compute_test.cc states its
bf16 tolerance against these numbers (plm's bf16 mode must stay within them).

  .venv-ref/bin/python tools/reference/hf_bf16_logit_noise.py   # from the repository root
"""
import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import PerceptionLMForConditionalGeneration

ROOT = "tests/fixtures/models/"


def logits(model_dir, dtype, ids, inputs):
    model = PerceptionLMForConditionalGeneration.from_pretrained(ROOT + model_dir, dtype=dtype).eval()
    media = {}
    for name in ("pixel_values", "pixel_values_videos"):
        if name in inputs:
            media[name] = torch.from_numpy(inputs[name]).to(dtype)
    with torch.no_grad():
        return model(input_ids=ids, **media).logits.float()[0]


def main():
    torch.set_num_threads(1)
    for model_dir in ("cls_tied", "nocls_untied"):
        for inp in ("image", "video", "text"):
            expected = load_file(f"{ROOT}expected/{model_dir}/{inp}.safetensors")
            inputs = load_file(f"{ROOT}inputs/{inp}.safetensors")
            ids = np.concatenate([expected["input_ids"].reshape(-1), expected["generate.tokens"].reshape(-1)])
            ids = torch.from_numpy(ids.astype(np.int64)).reshape(1, -1)
            f32 = logits(model_dir, torch.float32, ids, inputs)
            bf16 = logits(model_dir, torch.bfloat16, ids, inputs)
            diff = (bf16 - f32).abs().max().item()
            top = f32.abs().max().item()
            print(f"{model_dir}/{inp}: HF bf16 max |logit - f32| = {diff:.4f}, max |logit| = {top:.3f} "
                  f"({100 * diff / top:.2f} %)")


if __name__ == "__main__":
    main()
