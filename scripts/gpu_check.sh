#!/usr/bin/env bash
# Is Laneway's GPU path right on this machine? For a person with an NVIDIA GPU, from the
# repository root, after `make install` with a CUDA build of torch in .venv:
#
#   scripts/gpu_check.sh            # cuda (device 0)
#   scripts/gpu_check.sh cuda:1     # another device
#   DEVICE=cpu MODEL=tiny BENCH_ARGS="--requests 0 --skip-hf" scripts/gpu_check.sh
#                                   # the same steps on the CPU, quickly (checks this script itself)
#
# Steps, each bounded, each reported PASS/FAIL at the end (exit status 1 if any failed):
#  1. what torch, CUDA, Triton and the C compiler Triton needs say about this machine;
#  2. the Triton paged-attention kernel against the reference implementation;
#  3. the whole engine on the device against Hugging Face transformers (greedy tokens
#     exactly, with chunked prefill, preemption and prefix cache), seeded sampling, and
#     streams resumed from another worker's tokens (the existing exactness tests, with
#     LANEWAY_TEST_DEVICE set);
#  4. a real `laneway worker --device ...`: its warm-up compiles every kernel before it
#     reports SERVING, then it serves one request and drains on SIGTERM;
#  5. the engine benchmark, printed (`laneway bench engine --device ...`).
# Logs go to $OUT (default: a fresh directory under /tmp), never into the repository.
set -u
cd "$(dirname "$0")/.."

DEVICE=${1:-${DEVICE:-cuda}}
PY=${PY:-.venv/bin/python}
LANEWAY=${LANEWAY:-.venv/bin/laneway}
MODEL=${MODEL:-small}
OUT=${OUT:-$(mktemp -d /tmp/laneway-gpu-check.XXXXXX)}
mkdir -p "$OUT"
RESULTS=()

step() {  # step NAME TIMEOUT_S COMMAND...: run it, log it, remember PASS/FAIL
    local name=$1 limit=$2
    shift 2
    echo "== $name (log: $OUT/$name.log)"
    if declare -F "$1" >/dev/null; then  # one of the functions below: timeout needs a process
        set -- bash -c "$1"
    fi
    if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
        RESULTS+=("PASS $name")
    else
        RESULTS+=("FAIL $name (exit $?): see $OUT/$name.log")
        tail -n 20 "$OUT/$name.log"
    fi
}

environment() {
    command -v nvidia-smi >/dev/null && nvidia-smi
    "$PY" - "$DEVICE" <<'EOF'
import shutil, sys
import torch
device = torch.device(sys.argv[1])
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())
if device.type == "cuda":
    assert torch.cuda.is_available(), "torch sees no CUDA device (a CPU build of torch?)"
    print("device", torch.cuda.get_device_name(device), "capability", torch.cuda.get_device_capability(device))
    import triton
    print("triton", triton.__version__)
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "no C compiler: Triton builds its kernel launchers with one on first launch"
    print("C compiler", cc)
EOF
}

worker_smoke() {
    local port log pid
    port=$("$PY" -c "from laneway.ports import free_port; print(free_port())")
    log="$OUT/worker-process.log"
    LANEWAY_TRACING=off "$LANEWAY" worker --model "$MODEL" --device "$DEVICE" --port "$port" >"$log" 2>&1 &
    pid=$!
    "$PY" - "$port" "$pid" <<'EOF'
import os, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from laneway_proto import worker_pb2 as pb, worker_pb2_grpc as pb_grpc
port, pid = sys.argv[1], int(sys.argv[2])
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
deadline = time.monotonic() + 600
while True:  # the warm-up (every pass once, Triton compiles) comes before SERVING
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the worker exited during start-up (a warm-up failure is reported in its log)")
    try:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status
        if status == health_pb2.HealthCheckResponse.SERVING:
            break
    except grpc.RpcError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the worker never reported SERVING")
    time.sleep(1)
req = pb.GenerateRequest(request_id="gpu-check", text="The capital of France is",
                         sampling=pb.SamplingParams(max_tokens=16, ignore_eos=True))
chunks = list(pb_grpc.WorkerStub(channel).Generate(req, timeout=120))
tokens = sum(len(c.token_ids) for c in chunks)
assert tokens == 16 and chunks[-1].finish_reason == pb.FINISH_REASON_LENGTH, chunks[-1]
print("served", tokens, "tokens:", repr("".join(c.text for c in chunks)))
EOF
    local served=$?
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    local code=$?
    cat "$log"
    echo "worker exit status after SIGTERM: $code"
    [ "$served" -eq 0 ] && [ "$code" -eq 0 ]
}

export DEVICE PY LANEWAY MODEL OUT
export -f environment worker_smoke
step environment 120 environment
step triton-kernel 1200 "$PY" -m pytest -q -p no:cacheprovider tests/workers/triton tests/workers/kernels
step engine-vs-transformers 1800 env LANEWAY_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider \
    tests/workers/engine/test_engine_correctness.py tests/workers/test_resume.py
step worker-start-up 900 worker_smoke
# BENCH_ARGS: extra flags, e.g. "--requests 0 --skip-hf" for a quick look.
# shellcheck disable=SC2086
step engine-benchmark 3600 "$LANEWAY" bench engine --model "$MODEL" --device "$DEVICE" --out "$OUT/engine.json" \
    ${BENCH_ARGS:-}
cat "$OUT/engine-benchmark.log"

echo
echo "== summary ($DEVICE; logs in $OUT)"
printf '%s\n' "${RESULTS[@]}"
! printf '%s\n' "${RESULTS[@]}" | grep -q '^FAIL'
