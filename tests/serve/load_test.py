#!/usr/bin/env python3
"""Load test of `plm serve` on loopback (issue 25): starts the server on the tiny cls_tied model with a small queue,
sends R requests from C concurrent clients, a seeded mix of valid (chat / completion, whole / streamed, text / an
image from the media root), invalid (bad JSON, missing fields, unknown model, media outside the root by `..` and by
symlink, a broken image, too many tokens, wrong method or route, bytes that are not HTTP) and clients that hang up
(right after sending, or after the first streamed token), and checks:
  - every request that was not hung up got exactly one complete, well-formed response of its expected status
    (valid: 200 or 429 with Retry-After; invalid: its own 4xx); no transport error, no timeout;
  - 429s happened (the queue overflowed) and every 200 carries an id no other response carries;
  - the server counted exactly one response per request sent (plm_http_responses_total), logged each id of a 200 once;
  - afterwards: no request running or waiting, every KV block free of requests, /health ok, a new request served,
    and the server's peak RSS under --max-rss-mib; SIGTERM ends it with status 0.
Prints requests, responses by class, p50/p99 latency, peak RSS, and one JSON line. Exit status 1 on any failure.
Python 3 standard library only.

usage: load_test.py --plm PLM --models FIXTURE_MODELS_DIR [--requests 10000] [--concurrency 256] [--max-queue 64]
"""
import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

HOST = "127.0.0.1"

# kind: (weight, expected statuses). Valid kinds may also get 429 (added below); hang-ups expect nothing.
KINDS = {
    "chat": (20, {200}),
    "chat_stream": (18, {200}),
    "completion": (6, {200}),
    "completion_stream": (5, {200}),
    "chat_image": (4, {200}),
    "hangup_after_send": (8, set()),
    "hangup_mid_stream": (9, set()),
    "bad_json": (4, {400}),
    "no_messages": (3, {400}),
    "unknown_model": (3, {404}),
    "media_dotdot": (3, {403}),
    "media_symlink": (3, {403}),
    "broken_image": (3, {400}),
    "too_many_tokens": (3, {422}),
    "wrong_method": (2, {405}),
    "unknown_route": (2, {404}),
    "not_http": (4, {400}),
}
VALID = {"chat", "chat_stream", "completion", "completion_stream", "chat_image"}
# Kinds whose request passes the queue check and fails in preparation (media, context): a full queue is a 429 first.
QUEUED = VALID | {"hangup_mid_stream", "media_dotdot", "media_symlink", "broken_image", "too_many_tokens"}
WORDS = "cat dog river mountain engine cloud violet quantum bread harbor lantern signal orbit".split()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--plm", required=True)
    p.add_argument("--models", required=True, help="tests/fixtures/models (cls_tied/ and inputs/)")
    p.add_argument("--requests", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--max-queue", type=int, default=64, help="the server's --max-queue (small: 429s under load)")
    p.add_argument("--max-rss-mib", type=float, default=1024)
    p.add_argument("--timeout-s", type=float, default=300, help="per request")
    p.add_argument("--seed", type=int, default=25)
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args()


# --- the server and its media root ---------------------------------------------------------------------------

class Server:
    def __init__(self, args, scratch):
        self.root = os.path.join(scratch, "media")
        os.makedirs(self.root)
        shutil.copy(os.path.join(args.models, "inputs", "image_150x100.png"), os.path.join(self.root, "cat.png"))
        secret = os.path.join(scratch, "secret.png")
        shutil.copy(os.path.join(args.models, "inputs", "image_150x100.png"), secret)
        os.symlink(secret, os.path.join(self.root, "link_out.png"))
        self.log_path = os.path.join(scratch, "serve.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [args.plm, "serve", "--model", os.path.join(args.models, "cls_tied"), "--port", "0",
             "--media-root", self.root, "--max-queue", str(args.max_queue), "--kv-cache-bytes", "64M",
             "--max-num-seqs", "32", "--max-model-len", "2048"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            match = re.search(r"ready on http://[0-9.]+:([0-9]+)", self.read_log())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None:
                sys.exit("plm serve exited before it was ready:\n" + self.read_log())
            time.sleep(0.05)
        else:
            self.process.kill()
            sys.exit("plm serve did not get ready in 120 s:\n" + self.read_log())
        self.peak_rss_kib = 0
        self.stop_sampling = threading.Event()
        self.sampler = threading.Thread(target=self.sample_rss, daemon=True)
        self.sampler.start()

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def rss_kib(self):
        try:
            with open(f"/proc/{self.process.pid}/status") as f:
                return int(re.search(r"VmRSS:\s+([0-9]+) kB", f.read()).group(1))
        except (OSError, AttributeError):
            return 0

    def sample_rss(self):
        while not self.stop_sampling.wait(0.05):
            self.peak_rss_kib = max(self.peak_rss_kib, self.rss_kib())

    def terminate(self):
        self.stop_sampling.set()
        self.sampler.join()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None
        finally:
            self.log.close()


# --- one HTTP exchange ----------------------------------------------------------------------------------------

class Outcome:
    def __init__(self, index, kind):
        self.index, self.kind = index, kind
        self.status = None      # HTTP status, None when none was read
        self.headers = {}
        self.body = b""
        self.events = []        # SSE data payloads, in order
        self.error = None       # transport error or malformed response
        self.latency_s = 0.0
        self.hung_up = False


async def read_response(reader, outcome, stop_after_first_token):
    """Reads one HTTP/1.1 response (Content-Length, chunked, or to EOF). For text/event-stream bodies the SSE
    payloads go to outcome.events as they arrive; stop_after_first_token returns after the first content chunk."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("the connection closed before a status line")
    match = re.match(rb"HTTP/1\.[01] ([0-9]{3}) ", line)
    if not match:
        raise ValueError(f"bad status line {line[:80]!r}")
    outcome.status = int(match.group(1))
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionError("the connection closed inside the headers")
        name, _, value = line.decode("latin-1").partition(":")
        outcome.headers[name.strip().lower()] = value.strip()
    sse = outcome.headers.get("content-type", "").startswith("text/event-stream")
    pending = b""

    def take_events(data):
        nonlocal pending
        pending += data
        found_token = False
        while b"\n\n" in pending:
            event, pending = pending.split(b"\n\n", 1)
            for field in event.split(b"\n"):
                if field.startswith(b"data: "):
                    payload = field[6:].decode()
                    outcome.events.append(payload)
                    found_token |= payload != "[DONE]" and '"content":"' in payload and '"content":""' not in payload
        return found_token

    if outcome.headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise ConnectionError("the connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            data = await reader.readexactly(size + 2)
            if data[-2:] != b"\r\n":
                raise ValueError("a chunk not followed by CRLF")
            if size == 0:
                if data != b"\r\n":
                    raise ValueError("a trailer after the last chunk")
                return
            outcome.body += data[:-2]
            if sse and take_events(data[:-2]) and stop_after_first_token:
                return
    elif "content-length" in outcome.headers:
        outcome.body = await reader.readexactly(int(outcome.headers["content-length"]))
        if sse:
            take_events(outcome.body)
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            outcome.body += data
            if sse and take_events(data) and stop_after_first_token:
                return


def http_request(method, path, body, content_type="application/json"):
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
    if body is not None:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def request_bytes(kind, rng, index):
    """The bytes a request of this kind sends; valid ones ask for 1-12 tokens of a varied prompt."""
    text = f"Request {index}: tell me about the {rng.choice(WORDS)} and the {rng.choice(WORDS)}."
    max_tokens = rng.randint(1, 12)
    user = lambda content: {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    image = lambda url: user([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}])
    streamed = lambda body: dict(body, stream=True, stream_options={"include_usage": True})
    chat = lambda body: http_request("POST", "/v1/chat/completions", json.dumps(body).encode())
    if kind == "chat":
        return chat(user(text))
    if kind in ("chat_stream", "hangup_mid_stream"):
        return chat(streamed(user(text)))
    if kind == "hangup_after_send":
        return chat(user(text) if index % 2 else streamed(user(text)))
    if kind in ("completion", "completion_stream"):
        body = {"prompt": text, "max_tokens": max_tokens}
        return http_request("POST", "/v1/completions",
                            json.dumps(streamed(body) if kind == "completion_stream" else body).encode())
    if kind == "chat_image":
        return chat(image("cat.png"))
    if kind == "bad_json":
        return http_request("POST", "/v1/chat/completions", json.dumps(user(text)).encode()[:-3])
    if kind == "no_messages":
        return chat({"max_tokens": max_tokens})
    if kind == "unknown_model":
        return chat(dict(user(text), model="no-such-model"))
    if kind == "media_dotdot":  # a file that is there, or one that is not: the same 403
        return chat(image("../secret.png" if index % 2 else "../no-such-file.png"))
    if kind == "media_symlink":
        return chat(image("link_out.png"))
    if kind == "broken_image":
        return chat(image("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"))
    if kind == "too_many_tokens":
        return chat(dict(user(text), max_tokens=10**8))
    if kind == "wrong_method":
        return http_request("GET", "/v1/chat/completions", None)
    if kind == "unknown_route":
        return http_request("POST", "/v1/embeddings", json.dumps(user(text)).encode())
    if kind == "not_http":
        return b"\x16\x03\x01 this is not HTTP at all\r\n\r\n"
    raise AssertionError(kind)


async def exchange(port, index, kind, payload, timeout_s):
    outcome = Outcome(index, kind)
    start = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout_s)
        writer.write(payload)
        await writer.drain()
        if kind == "hangup_after_send":
            outcome.hung_up = True
        else:
            await asyncio.wait_for(read_response(reader, outcome, kind == "hangup_mid_stream"), timeout_s)
            outcome.hung_up = kind == "hangup_mid_stream"
    except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError) as error:
        outcome.error = f"{type(error).__name__}: {error}"
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
    outcome.latency_s = time.monotonic() - start
    return outcome


MONITOR_GETS = Counter()  # path -> GETs of the checks themselves


async def get(port, path):
    MONITOR_GETS[path] += 1
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(http_request("GET", path, None))
    outcome = Outcome(-1, "monitor")
    await asyncio.wait_for(read_response(reader, outcome, False), 30)
    writer.close()
    return outcome.status, outcome.body.decode()


async def run_load(args, port, plan):
    next_index = 0
    outcomes = []

    async def client():
        nonlocal next_index
        while next_index < len(plan):
            index = next_index
            next_index += 1
            kind, payload = plan[index]
            outcome = await exchange(port, index, kind, payload, args.timeout_s)
            outcomes.append(outcome)
            if outcome.status == 429 and "retry-after" in outcome.headers:  # a polite client waits, with jitter
                await asyncio.sleep(float(outcome.headers["retry-after"]) * random.uniform(0.5, 1.5))

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    return outcomes, time.monotonic() - start


# --- checks ---------------------------------------------------------------------------------------------------

def check_outcome(o, max_tokens_of, failures):
    """Appends to failures what is wrong with one request's response; returns the id of a 200 (or None)."""
    def fail(what):
        failures.append(f"request {o.index} ({o.kind}): {what}")

    if o.kind == "hangup_after_send":
        return None
    if o.error:
        fail(o.error)
        return None
    expected = KINDS[o.kind][1] | ({429} if o.kind in QUEUED else set())
    if o.kind == "hangup_mid_stream":
        expected.add(200)
    if o.status not in expected:
        fail(f"status {o.status}, expected {sorted(expected)}: {o.body[:200]!r}")
        return None
    if o.status == 429 and "retry-after" not in o.headers:
        fail("a 429 without Retry-After")
    if o.status != 200:
        try:
            json.loads(o.body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            fail(f"an error body that is not OpenAI's error JSON: {o.body[:200]!r}")
        return None
    if o.kind == "hangup_mid_stream":
        return None
    if o.kind.endswith("_stream"):
        if not o.events or o.events[-1] != "[DONE]" or o.events.count("[DONE]") != 1:
            fail(f"the stream does not end with exactly one [DONE]: {o.events[-3:]}")
            return None
        chunks = [json.loads(e) for e in o.events[:-1]]
        ids = {c["id"] for c in chunks}
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        usage = [c["usage"] for c in chunks if c.get("usage")]
        if len(ids) != 1 or len(finishes) != 1 or finishes[0] not in ("stop", "length") or len(usage) != 1:
            fail(f"a stream with ids {ids}, finish reasons {finishes}, {len(usage)} usage chunks")
            return None
        tokens = usage[0]["completion_tokens"]
        response_id = ids.pop()
    else:
        body = json.loads(o.body)
        if body["choices"][0]["finish_reason"] not in ("stop", "length"):
            fail(f"finish_reason {body['choices'][0]['finish_reason']}")
        tokens = body["usage"]["completion_tokens"]
        response_id = body["id"]
    if not 1 <= tokens <= max_tokens_of[o.index]:
        fail(f"{tokens} completion tokens for max_tokens {max_tokens_of[o.index]}")
    return response_id


def metric_values(text, name):
    """{labels: value} of one Prometheus metric in /metrics text ('' for no labels)."""
    values = {}
    for match in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$", text, re.M):
        values[match.group(1) or ""] = float(match.group(2))
    return values


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    at = p / 100 * (len(values) - 1)
    lo = int(at)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (at - lo)


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    kinds, weights = zip(*((k, w) for k, (w, _) in KINDS.items()))
    plan, max_tokens_of = [], []
    for index in range(args.requests):
        kind = rng.choices(kinds, weights)[0]
        payload = request_bytes(kind, rng, index)
        match = re.search(rb'"max_tokens": ([0-9]+)', payload)
        max_tokens_of.append(int(match.group(1)) if match else 0)
        plan.append((kind, payload))

    failures = []
    # Under ctest, in the build's test_tmp/ like every test's scratch files; kept when a check fails (the server log).
    parent = os.environ.get("TEST_TMPDIR")
    if parent:
        os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="plm_load_", dir=parent)
    server = Server(args, scratch)
    try:
        before = asyncio.run(get(server.port, "/metrics"))[1]
        outcomes, wall_s = asyncio.run(run_load(args, server.port, plan))
        outcomes.sort(key=lambda o: o.index)
        if len(outcomes) != len(plan):
            failures.append(f"{len(outcomes)} outcomes for {len(plan)} requests")

        # Each request's response.
        ids = Counter()
        for o in outcomes:
            response_id = check_outcome(o, max_tokens_of, failures)
            if response_id:
                ids[response_id] += 1
        failures += [f"response id {i} returned {n} times" for i, n in ids.items() if n > 1]
        statuses = Counter((o.kind, o.status if not o.hung_up else "hung up") for o in outcomes)
        num_429 = sum(n for (_, s), n in statuses.items() if s == 429)
        if num_429 == 0:
            failures.append("no 429: the queue never overflowed (raise --concurrency or lower --max-queue)")

        # The server's view, once it is idle: nothing running, every KV block back, one response per request.
        deadline = time.time() + 60
        while True:
            metrics = asyncio.run(get(server.port, "/metrics"))[1]
            busy = [metric_values(metrics, m).get("", 0) for m in
                    ("plm_num_requests_running", "plm_num_requests_waiting", "plm_queue_depth")]
            if not any(busy) or time.time() > deadline:
                break
            time.sleep(0.2)
        if any(busy):
            failures.append(f"60 s after the load: running, waiting, queued = {busy}")
        blocks = metric_values(metrics, "plm_kv_cache_blocks")
        kv_tokens = metric_values(metrics, "plm_kv_cache_tokens")
        if blocks.get('state="used"', -1) != 0 or kv_tokens.get('state="reserved"', -1) != 0:
            failures.append(f"KV cache not free after the load: blocks {blocks}, tokens {kv_tokens}")
        responses = {k: v - metric_values(before, "plm_http_responses_total").get(k, 0)
                     for k, v in metric_values(metrics, "plm_http_responses_total").items()}
        # Every /metrics GET but the last is counted too (a GET's own response is counted after it renders).
        counted = sum(responses.values()) - (MONITOR_GETS["/metrics"] - 1)
        if counted != len(plan):
            failures.append(f"the server counted {counted} responses for {len(plan)} requests: {responses}")
        logged = Counter(re.findall(r"^request id=(\S+) route=\S+ status=200 ", server.read_log(), re.M))
        all_logged = Counter(re.findall(r"^request id=(\S+) ", server.read_log(), re.M))
        failures += [f"id {i} logged {n} times" for i, n in all_logged.items() if n > 1]
        failures += [f"id {i} returned to a client but not logged with status 200" for i in ids if logged[i] != 1]

        # Healthy afterwards.
        health = asyncio.run(get(server.port, "/health"))
        if health != (200, '{"status":"ok"}'):
            failures.append(f"/health after the load: {health}")
        after = asyncio.run(exchange(server.port, len(plan), "chat", request_bytes("chat", random.Random(1), 0), 60))
        if after.status != 200:
            failures.append(f"a request after the load: {after.status} {after.error or after.body[:200]!r}")
        peak_rss_mib = server.peak_rss_kib / 1024
        if peak_rss_mib > args.max_rss_mib:
            failures.append(f"peak RSS {peak_rss_mib:.0f} MiB over --max-rss-mib {args.max_rss_mib:.0f}")
    finally:
        exit_status = server.terminate()
    if exit_status != 0:
        failures.append(f"plm serve exited with {exit_status} after SIGTERM")

    served = [o for o in outcomes if o.status == 200 and not o.hung_up]
    figures = {
        "requests": len(plan),
        "concurrency": args.concurrency,
        "max_queue": args.max_queue,
        "wall_s": round(wall_s, 2),
        "requests_per_s": round(len(plan) / wall_s, 1),
        "responses": {f"{k} {s}": n for (k, s), n in sorted(statuses.items(), key=str)},
        "by_status": dict(sorted(Counter(str(o.status if not o.hung_up else "hung up") for o in outcomes).items())),
        "transport_errors": sum(1 for o in outcomes if o.error),
        "latency_ms_p50_200": round(percentile([o.latency_s for o in served], 50) * 1e3, 1),
        "latency_ms_p99_200": round(percentile([o.latency_s for o in served], 99) * 1e3, 1),
        "latency_ms_p50_all": round(percentile([o.latency_s for o in outcomes if not o.hung_up], 50) * 1e3, 1),
        "latency_ms_p99_all": round(percentile([o.latency_s for o in outcomes if not o.hung_up], 99) * 1e3, 1),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "server_responses": {k: int(v) for k, v in sorted(responses.items())},
        "kv_blocks_after": {k: int(v) for k, v in blocks.items()},
        "failures": len(failures),
    }
    print(f"plm serve load test: {len(plan)} requests at concurrency {args.concurrency} (--max-queue "
          f"{args.max_queue}) in {wall_s:.1f} s, peak RSS {peak_rss_mib:.0f} MiB")
    for (kind, status), n in sorted(statuses.items(), key=str):
        print(f"  {kind:<20} {str(status):<8} {n:>6}")
    print(f"  latency of 200s: p50 {figures['latency_ms_p50_200']} ms, p99 {figures['latency_ms_p99_200']} ms")
    print(json.dumps(figures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    for failure in failures[:50]:
        print("FAIL", failure)
    if failures:
        print(f"{len(failures)} failures; the server's log: {server.log_path}")
        return 1
    shutil.rmtree(scratch)
    print("load test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
