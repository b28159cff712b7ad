"""Drives a running `ipfs-accelerate serve` with the real `openai` and
`ollama` Python packages (run by tests/server/test_clients.c, which starts the
server with tiny-bert and qwen2 and the API key sk-test, and writes the
reference embeddings). Exits 0 when every check passes, 1 naming the failures,
77 when the packages cannot be imported (the C test then skips).

usage: clients_check.py PORT REFERENCE.json
"""
import json
import sys

try:
    import ollama
    import openai
except ImportError as e:  # the C test reports this as a skip
    print(f"cannot import the client packages: {e}", file=sys.stderr)
    sys.exit(77)

port, ref_path = int(sys.argv[1]), sys.argv[2]
with open(ref_path) as f:
    ref = json.load(f)  # {"texts": [...], "vectors": [[...], ...]}
base = f"http://127.0.0.1:{port}"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def same_vectors(got, what):
    check(len(got) == len(ref["vectors"]), f"{what}: {len(got)} vectors")
    for i, (g, w) in enumerate(zip(got, ref["vectors"])):
        # float32 values compared exactly: the server's bits, decoded by the client
        check([float(x) for x in g] == w, f"{what}: vector {i} differs from the C embedder's")


# ---- openai -------------------------------------------------------------------------------
client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0)
ids = sorted(m.id for m in client.models.list())
check(ids == ["qwen2", "tiny-bert"], f"models.list: {ids}")

emb = client.embeddings.create(model="tiny-bert", input=ref["texts"])  # base64 by default
same_vectors([d.embedding for d in emb.data], "openai embeddings (base64)")
emb = client.embeddings.create(model="tiny-bert", input=ref["texts"], encoding_format="float")
same_vectors([d.embedding for d in emb.data], "openai embeddings (float)")
check(emb.usage.prompt_tokens > 0, "openai embeddings usage")

msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
for params in ({"temperature": 0}, {"temperature": 0.9, "top_p": 0.95, "seed": 77}):
    plain = client.chat.completions.create(model="qwen2", messages=msgs, max_tokens=20, **params)
    text = plain.choices[0].message.content
    check(bool(text), f"chat {params}: empty reply")
    check(plain.usage.completion_tokens > 0, f"chat {params}: usage")
    pieces, usage, finish = [], None, None
    stream = client.chat.completions.create(model="qwen2", messages=msgs, max_tokens=20,
                                            stream=True, stream_options={"include_usage": True},
                                            **params)
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    check("".join(pieces) == text, f"chat {params}: streamed {''.join(pieces)!r} != {text!r}")
    check(usage is not None and usage.completion_tokens == plain.usage.completion_tokens,
          f"chat {params}: streamed usage {usage}")
    check(finish == plain.choices[0].finish_reason, f"chat {params}: finish {finish}")

comp = client.completions.create(model="qwen2", prompt="Once upon", max_tokens=8, temperature=0)
check(comp.choices[0].finish_reason in ("stop", "length"), "completions finish_reason")
check(comp.usage.completion_tokens <= 8, "completions usage")

try:
    client.embeddings.create(model="no-such-model", input="x")
    check(False, "unknown model: no error")
except openai.NotFoundError as e:
    check(e.status_code == 404 and "no-such-model" in str(e), f"unknown model: {e}")
try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
    check(False, "wrong key: no error")
except openai.AuthenticationError as e:
    check(e.status_code == 401, f"wrong key: {e}")

# ---- ollama -------------------------------------------------------------------------------
oc = ollama.Client(host=base, headers={"Authorization": "Bearer sk-test"})
names = sorted(m.model for m in oc.list().models)
check(names == ["qwen2", "tiny-bert"], f"ollama list: {names}")
same_vectors(oc.embed(model="tiny-bert", input=ref["texts"]).embeddings, "ollama embed")

opts = {"temperature": 0, "num_predict": 12}
g = oc.generate(model="qwen2", prompt="Hi", options=opts)
streamed = list(oc.generate(model="qwen2", prompt="Hi", options=opts, stream=True))
check("".join(p.response for p in streamed) == g.response,
      f"ollama generate: streamed != plain {g.response!r}")
last = streamed[-1]
check(last.done and last.eval_count == g.eval_count and last.eval_count > 0,
      f"ollama generate: last chunk {last}")
check(g.total_duration and g.total_duration >= (g.eval_duration or 0), "ollama generate: timings")
check(g.prompt_eval_count and g.prompt_eval_count > 0, "ollama generate: prompt_eval_count")

c = oc.chat(model="qwen2", messages=[{"role": "user", "content": "Hello"}], options=opts)
cs = list(oc.chat(model="qwen2", messages=[{"role": "user", "content": "Hello"}], options=opts,
                  stream=True))
check("".join(p.message.content for p in cs) == c.message.content,
      f"ollama chat: streamed != plain {c.message.content!r}")
check(c.message.role == "assistant" and c.done_reason in ("stop", "length"), "ollama chat fields")
try:
    oc.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check(False, "ollama unknown model: no error")
except ollama.ResponseError as e:
    check(e.status_code == 404, f"ollama unknown model: {e}")

if failures:
    print(f"{len(failures)} client check(s) failed", file=sys.stderr)
    sys.exit(1)
print("openai and ollama clients: all checks passed")
