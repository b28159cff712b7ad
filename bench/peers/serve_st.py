#!/usr/bin/env python3
r"""A sentence-transformers embedding service, the peer of `ipfs-accelerate serve` in bench/serve.

  serve_st.py --model DIR [--threads 2] [--host 127.0.0.1] [--port 0] [--batching none|dynamic]
              [--max-batch 64] [--batch-wait-ms 2]

FastAPI on uvicorn (one process, one event loop), the way a sentence-transformers model is
usually put behind HTTP, with the routes bench/serve sends:
  POST /v1/embeddings  OpenAI: {"input": str | [str], "model"} -> {"object": "list", "data":
                       [{"object": "embedding", "index", "embedding"}], "model"} (no "usage":
                       counting tokens would cost a second tokenisation)
  POST /embed          TEI: {"inputs": str | [str]} -> [[float, ...], ...]
  GET  /health         200 once the model is loaded and warmed up
Vectors are what SentenceTransformer.encode returns for the model (for all-MiniLM-L6-v2: mean
pooling + its Normalize module), float32, serialised with orjson (FastAPI's ORJSONResponse) when
it is installed, else the json module.

Configured as shared/BENCHMARKING.md says for PyTorch: torch.set_num_threads(--threads),
torch.set_num_interop_threads(1), torch.inference_mode(), the model's default attention (SDPA),
float32, encode() with its own length sorting (batch_size 64).

--batching none (per request): each request's inputs are encoded by one encode() call, in
  FastAPI's thread pool; a lock lets one encode() run at a time, since concurrent calls would
  each start --threads intra-op threads on the same cores (oversubscription, slower).
--batching dynamic (request batching added here, as TEI does): a single worker thread takes
  every request waiting (up to --max-batch sentences; when fewer are waiting it waits up to
  --batch-wait-ms for more, like `serve --batch-wait-us`), encodes them together in one
  encode() call and hands each request its rows.

Prints "serving on http://HOST:PORT" and then "ready" on stdout (flushed), like
`ipfs-accelerate serve`; --port 0 picks a free port.
"""

import argparse
import asyncio
import os
import queue
import socket
import sys
import threading
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--batching", choices=("none", "dynamic"), default="none")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    return ap.parse_args()


args = parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(args.threads)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import Body, FastAPI, HTTPException  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

try:
    from fastapi.responses import ORJSONResponse as Response
    import orjson  # noqa: F401
except ImportError:
    Response = JSONResponse

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)
model = SentenceTransformer(args.model, device="cpu")
model_id = os.path.basename(os.path.normpath(args.model))


def encode(texts):
    with torch.inference_mode():
        return model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)


encode(["warm up"])

app = FastAPI()
lock = threading.Lock()
work = queue.Queue()


def worker():
    """--batching dynamic: one encode() over every waiting request."""
    while True:
        batch = [work.get()]
        n = len(batch[0][0])
        deadline = time.perf_counter() + args.batch_wait_ms / 1e3
        while n < args.max_batch:
            left = deadline - time.perf_counter()
            try:
                item = work.get(timeout=left) if left > 0 else work.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            n += len(item[0])
        texts = [t for item in batch for t in item[0]]
        try:
            vecs = encode(texts)
            err = None
        except Exception as e:  # handed to the requests
            vecs, err = None, e
        row = 0
        for texts_i, loop, fut in batch:
            k = len(texts_i)
            res = err if err else vecs[row:row + k]
            row += k
            loop.call_soon_threadsafe(_settle, fut, res)


def _settle(fut, res):
    if fut.cancelled():
        return
    if isinstance(res, Exception):
        fut.set_exception(res)
    else:
        fut.set_result(res)


async def embed_texts(texts):
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise HTTPException(400, "input must be a string or a non-empty list of strings")
    if args.batching == "dynamic":
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        work.put((texts, loop, fut))
        return await fut

    def run():
        with lock:
            return encode(texts)
    return await asyncio.to_thread(run)


@app.post("/v1/embeddings")
async def openai_embeddings(body: dict = Body(...)):
    vecs = await embed_texts(body.get("input"))
    data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)]
    return Response({"object": "list", "data": data, "model": body.get("model", model_id)})


@app.post("/embed")
async def tei_embed(body: dict = Body(...)):
    vecs = await embed_texts(body.get("inputs"))
    return Response(vecs.tolist())


@app.get("/health")
async def health():
    return {"status": "ok"}


def main():
    if args.batching == "dynamic":
        threading.Thread(target=worker, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    host, port = sock.getsockname()[:2]
    print(f"serving on http://{host}:{port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    config.load()
    print("ready", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
