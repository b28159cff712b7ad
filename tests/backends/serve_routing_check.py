"""Drives `serve --endpoints` (the gateway) with the real `openai` Python
client: run by tests/backends/test_serve_routing.c, which starts an upstream
server (tiny-bert, qwen2; key sk-upstream), the fake Anthropic provider and the
gateway (local model local-bert, key sk-gw, the upstream's and the fake's
models as remote endpoints). Chat, streamed chat and embeddings through the
gateway must equal what the upstream answers directly. Exits 0 when every
check passes, 1 naming the failures, 77 when openai cannot be imported.

usage: serve_routing_check.py GATEWAY_PORT UPSTREAM_PORT
"""
import sys

try:
    import openai
except ImportError as e:  # the C test reports this as a skip
    print(f"cannot import openai: {e}", file=sys.stderr)
    sys.exit(77)

gw_port, up_port = int(sys.argv[1]), int(sys.argv[2])
gw = openai.OpenAI(base_url=f"http://127.0.0.1:{gw_port}/v1", api_key="sk-gw", max_retries=0)
up = openai.OpenAI(base_url=f"http://127.0.0.1:{up_port}/v1", api_key="sk-upstream",
                   max_retries=0)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


models = {m.id: m.owned_by for m in gw.models.list()}
check(models.get("local-bert") == "ipfs-accelerate" and models.get("qwen2") == "upstream"
      and models.get("claude-py") == "haiku", f"models.list: {models}")

msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
want = up.chat.completions.create(model="qwen2", messages=msgs, max_tokens=16, temperature=0)
got = gw.chat.completions.create(model="qwen2", messages=msgs, max_tokens=16, temperature=0)
text = want.choices[0].message.content
check(bool(text) and got.choices[0].message.content == text,
      f"chat: gateway {got.choices[0].message.content!r} vs upstream {text!r}")
check(got.usage is not None and got.usage.completion_tokens == want.usage.completion_tokens,
      f"chat usage: {got.usage}")

pieces, usage, finish = [], None, None
for chunk in gw.chat.completions.create(model="qwen2", messages=msgs, max_tokens=16,
                                        temperature=0, stream=True,
                                        extra_headers={"X-Priority": "low"},
                                        stream_options={"include_usage": True}):
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
check("".join(pieces) == text, f"streamed chat: {''.join(pieces)!r} vs {text!r}")
check(finish == want.choices[0].finish_reason, f"streamed finish: {finish}")
check(usage is not None and usage.completion_tokens == want.usage.completion_tokens,
      f"streamed usage: {usage}")

texts = ["hello world, this is a test", "x", "The quick brown fox jumps"]
ref = [d.embedding for d in up.embeddings.create(model="tiny-bert", input=texts,
                                                  encoding_format="float").data]
# the SDK asks for base64 and decodes it unless a format is given
got = [d.embedding for d in gw.embeddings.create(model="tiny-bert", input=texts).data]
check(got == ref, "embeddings (base64) through the gateway differ from the upstream's")
got = [d.embedding for d in gw.embeddings.create(model="tiny-bert", input=texts,
                                                  encoding_format="float").data]
check(got == ref, "embeddings (float) through the gateway differ from the upstream's")

c = gw.chat.completions.create(model="claude-py",
                               messages=[{"role": "user", "content": "hi claude"}])
check(c.choices[0].message.content == "echo: hi claude", f"anthropic chat: {c}")
s = "".join(ch.choices[0].delta.content or "" for ch in gw.chat.completions.create(
    model="claude-py", messages=[{"role": "user", "content": "a b c"}], stream=True)
    if ch.choices)
check(s == "echo: a b c", f"anthropic stream: {s!r}")

try:
    gw.chat.completions.create(model="no-such-model",
                               messages=[{"role": "user", "content": "x"}])
    check(False, "unknown model: no error")
except openai.NotFoundError as e:
    check(e.status_code == 404, f"unknown model: {e}")

if failures:
    print(f"{len(failures)} gateway check(s) failed", file=sys.stderr)
    sys.exit(1)
print("openai client through the gateway: all checks passed")
