#!/usr/bin/env bash
# The main job of `make run`: a small semantic search first (embeds a handful
# of sentences and a query with the default model and prints the sentences
# ranked by cosine similarity to the query), then imports the model directory
# into the local IPFS store (by reference: --nocopy keeps the files where they
# are) and prints its CID, then starts the model server on that CID (loaded
# from the store: the files added by reference are verified and mapped where
# they are, no copy), under the directory's name as its model id; the server
# prints its URL and an example request and runs until Ctrl-C.
# IA_SERVE_PORT picks the port (8080); IA_DEMO_NO_SERVE=1 stops after the CID.
set -euo pipefail
cli=${1:?usage: demo.sh CLI MODEL_DIR}
model=${2:?usage: demo.sh CLI MODEL_DIR}
query=${IA_DEMO_QUERY:-"How do I share a model between machines?"}
"$cli" search --model "$model" --query "$query" \
  "IPFS addresses content by its hash, so any peer can serve the same model files." \
  "The weather in Lisbon is sunny with a light breeze this afternoon." \
  "A content identifier names data by what it is, not where it is stored." \
  "Quantized weights trade a little accuracy for much less memory." \
  "She baked bread every Sunday morning for her neighbours." \
  "Copy the model directory to the other computer and load it from there." \
  "Transformers turn sentences into vectors that capture their meaning." \
  "The football match ended in a draw after extra time."

echo
cid=$("$cli" add -r -Q --nocopy "$model")
echo "model directory $model"
echo "is IPFS content $cid (in the local store; 'ipfs-accelerate ls $cid' lists it)"

[ "${IA_DEMO_NO_SERVE:-0}" = 1 ] && exit 0
echo
exec "$cli" serve --model "$(basename "$model")=$cid" --port "${IA_SERVE_PORT:-8080}"
