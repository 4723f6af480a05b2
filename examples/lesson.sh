#!/usr/bin/env bash
# The lesson series with curl (and jq to carry params from one step to the next):
#   init → forward → loss → value-and-grad → train → forward again.
#   bash examples/lesson.sh [http://127.0.0.1:8080]
set -euo pipefail
BASE=${1:-${GRADSERVE_URL:-http://127.0.0.1:8080}}
BASE=${BASE%/} # so that http://host:8080/ and a path prefix (http://host/gradserve) both work
post() { curl -sS --fail-with-body "$BASE$1" -H 'content-type: application/json' -d "$2"; }
XY='"x": [[0,0],[0,1],[1,0],[1,1]], "y": [0,1,1,0]'

# 1. Build the network 2 → 4 → 1 and initialise it (glorot_normal, seed 0).
PARAMS=$(post /init '{"layers": [2, 4, 1], "seed": 0, "scheme": "glorot_normal"}' | jq -c .params)
echo "1. init           $PARAMS"

# 2. The forward pass (tanh hidden layer, sigmoid output).
echo "2. forward        $(post /forward "{\"params\": $PARAMS, \"x\": [[0,0],[0,1],[1,0],[1,1]]}" | jq -c .predictions)"

# 3. The loss (binary cross-entropy, mean).
echo "3. loss           $(post /loss "{\"params\": $PARAMS, $XY}" | jq .loss)"

# 4. The loss and its gradient tree.
echo "4. value-and-grad $(post /value-and-grad "{\"params\": $PARAMS, $XY}" | jq -c '.grads[1]')"

# 5. Train: 500 steps of adam, learning rate 0.05.
TRAINED=$(post /train "{\"params\": $PARAMS, $XY, \"optimizer\": {\"name\": \"adam\", \"learningRate\": 0.05}, \"steps\": 500}")
echo "5. train          final loss $(jq .loss <<<"$TRAINED")"

# 6. The trained network's predictions.
echo "6. forward        $(post /forward "{\"params\": $(jq -c .params <<<"$TRAINED"), \"x\": [[0,0],[0,1],[1,0],[1,1]]}" | jq -c .predictions)"
jq -e '.loss < 0.05' <<<"$TRAINED" >/dev/null || { echo 'the walkthrough did not learn XOR' >&2; exit 1; }
