#!/usr/bin/env bash
# Everything the GPU box checks in one device call: build with its torch/triton, import, the
# test suite, and the benchmarks. Usage (from the repo root, on the GPU machine):
#   OUT=/some/dir FASTPRETRAIN_DATA=.gpu-data bash benchmarks/run_gpu.sh
# where .gpu-data holds copies of ../shared/data/corpus20m.txt.xz and ../shared/data/eval/ (carry it).
set -uo pipefail
# Under the device tool ($OUT set) results are packed into $OUT/gpu_results.tgz at the end, since
# only 8 files come back from a call; unpack it into benchmarks/results/.
out="${OUT:+$OUT/results}"
out="${out:-benchmarks/results}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 FASTPRETRAIN_CACHE="${FASTPRETRAIN_CACHE:-/tmp/fastpretrain-cache}"
FASTPRETRAIN_DATA="$(realpath "${FASTPRETRAIN_DATA:-../shared/data}")"
export FASTPRETRAIN_DATA

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu_env.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu_env.txt"

echo "== build"
python3 -m pip install --no-build-isolation --no-deps -e . > "$out/gpu_build.log" 2>&1 || { tail -30 "$out/gpu_build.log"; exit 1; }
(cd /tmp && python3 -c "import fastpretrain, fastpretrain._C, fastpretrain.kernels; print('import ok', fastpretrain._C.__file__, fastpretrain.kernels.__file__)") | tee -a "$out/gpu_env.txt"

echo "== tests"
# From tests/, so the source tree does not shadow the installed package on sys.path.
(cd tests && python3 -m pytest -q -p no:cacheprovider . 2>&1) | tee "$out/gpu_tests.log" | tail -15

echo "== benchmarks"
python3 benchmarks/bench_corpus.py --corpus "$FASTPRETRAIN_DATA/corpus20m.txt.xz" \
  --workers 1,2,4,8,16 --batch-size 65536 --out "$out" 2>&1 | tail -25
D="$FASTPRETRAIN_DATA"
for programs in 2 8; do
  python3 benchmarks/bench_word2vec.py --corpus "$D/corpus20m.txt.xz" --questions "$D/eval/questions-words.txt" \
    --programs-per-sm $programs --out "$out" 2>&1 | tail -9
done
python3 benchmarks/bench_word2vec.py --corpus "$D/corpus20m.txt.xz" --questions "$D/eval/questions-words.txt" \
  --shared-negatives 1 --batch-size 16384 --out "$out" 2>&1 | tail -9
python3 benchmarks/quality_word2vec.py --engine ours --corpus "$D/corpus20m.txt.xz" --eval-dir "$D/eval" \
  --methods sg-ns,cbow-ns,sg-hs,cbow-hs,sg-ns-shared --out "$out" 2>&1 | tail -8
python3 benchmarks/bench_sampled_logits.py --out "$out" 2>&1 | tail -9
# MAE on Fashion-MNIST (copy ../shared/data/fashion-mnist into $FASTPRETRAIN_DATA): probe vs random init / pixels
python3 benchmarks/quality_mae.py --tag _gpu --out "$out" 2>&1 | tail -12
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/gpu_results.tgz" -C "$out" . && rm -rf "$out"
fi
