#!/usr/bin/env python3
"""The official `openai` Python client, unmodified, against `plm serve` on the tiny cls_tied model: models.list,
a chat completion with a data: image (the same text as `plm generate`), the same request streamed, a legacy
completion, and the client's typed errors (401, 400, 422). Exits 77 (ctest: skipped) when the openai package
is not installed: `pip install openai` to run it.

usage: openai_client_test.py PLM_BINARY FIXTURE_MODELS_DIR
"""
import base64
import os
import re
import subprocess
import sys
import tempfile
import time

try:
    import openai
except ImportError:
    print("skipped: the openai Python package is not installed (pip install openai)")
    sys.exit(77)

PLM, MODELS = sys.argv[1], sys.argv[2]
MODEL_DIR = os.path.join(MODELS, "cls_tied")
IMAGE = os.path.join(MODELS, "inputs", "image_150x100.png")
KEY = "test-key"


def start_server(log):
    server = subprocess.Popen(
        [PLM, "serve", "--model", MODEL_DIR, "--port", "0", "--api-key", KEY, "--kv-cache-bytes", "32M",
         "--max-num-seqs", "8", "--max-model-len", "2048"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1200):
        with open(log.name) as f:
            match = re.search(r"ready on (http://[0-9.]+:[0-9]+)", f.read())
        if match:
            return server, match.group(1)
        if server.poll() is not None:
            break
        time.sleep(0.05)
    server.kill()
    with open(log.name) as f:
        sys.exit("plm serve did not get ready:\n" + f.read())


def plm_generate(max_new_tokens):
    out = subprocess.run([PLM, "generate", "--model", MODEL_DIR, "--image", IMAGE, "--prompt", "Describe this image.",
                          "--max-new-tokens", str(max_new_tokens)], check=True, capture_output=True, text=True)
    return out.stdout[:-1] if out.stdout.endswith("\n") else out.stdout


def expect_error(kind, call):
    try:
        call()
    except kind as error:
        return error
    sys.exit(f"expected {kind.__name__}")


def main():
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        server, url = start_server(log)
        try:
            client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
            assert [m.id for m in client.models.list()] == ["cls_tied"]

            with open(IMAGE, "rb") as f:
                image_url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
            messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                                     {"type": "text", "text": "Describe this image."}]}]
            expected = plm_generate(16)
            reply = client.chat.completions.create(model="cls_tied", messages=messages, max_tokens=16, temperature=0)
            assert reply.choices[0].message.content == expected, (reply.choices[0].message.content, expected)
            assert reply.choices[0].finish_reason == "length"
            assert reply.usage.completion_tokens == 16

            stream = client.chat.completions.create(model="cls_tied", messages=messages, max_completion_tokens=16,
                                                    temperature=0, stream=True, stream_options={"include_usage": True})
            text, usage, finish = "", None, None
            for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
                if chunk.usage:
                    usage = chunk.usage
            assert text == expected, (text, expected)
            assert finish == "length" and usage.completion_tokens == 16

            completion = client.completions.create(model="cls_tied", prompt="Hello", max_tokens=5, temperature=0)
            assert completion.usage.completion_tokens <= 5 and completion.choices[0].finish_reason in ("stop", "length")

            expect_error(openai.UnprocessableEntityError, lambda: client.chat.completions.create(
                model="cls_tied", messages=messages, max_tokens=100000))
            expect_error(openai.BadRequestError, lambda: client.chat.completions.create(
                model="cls_tied", messages=messages, max_tokens=4, n=2))
            expect_error(openai.NotFoundError, lambda: client.chat.completions.create(
                model="gpt-4o", messages=messages, max_tokens=4))
            wrong_key = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
            expect_error(openai.AuthenticationError, lambda: wrong_key.models.list())
        finally:
            server.terminate()
            code = server.wait(timeout=60)
        assert code == 0, f"plm serve exited with {code}"
    print("openai client: models.list, chat with a data: image, streaming, completions and errors all work")


if __name__ == "__main__":
    main()
