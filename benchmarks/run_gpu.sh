#!/usr/bin/env bash
# GPU runs in profiles that each fit one device call of at most 8 minutes, build included, and
# save as they go. On the GPU machine, from the repo root:
#
#   OUT=/some/dir FASTPRETRAIN_COMMIT=<sha> bash benchmarks/run_gpu.sh --profile kernels
#   bash benchmarks/run_gpu.sh --profile models --dry-run     # the sections and their time budgets
#   bash benchmarks/run_gpu.sh --profile word2vec --stage     # here, before the call: copy its data to .gpu-data/
#   bash benchmarks/run_gpu.sh --list                         # every profile and its data
#
# Every section runs under `timeout -k` with its own budget, cut further by the global deadline
# GPU_DEADLINE_S (default 480 s from the start); each appends one line (name, rc, seconds, budget)
# to summary.txt, and after each one the results are repacked atomically into $OUT/results.tgz,
# so a call killed at any point still returns everything finished before it (only 8 files come
# back from a device call: results.tgz, summary.txt and the last section's log). Unpack
# results.tgz into benchmarks/results/. Without OUT, results go straight to benchmarks/results/.
#
# Data: one data set per call, copied by --stage from ../shared/data into .gpu-data/ (ignored by
# git; carry it), size-checked under 60 MiB so that the working tree stays under the 64 MiB a call
# may send. The corpus engine benchmark needs no GPU and runs on CPU machines instead.
set -uo pipefail
cd "$(dirname "$0")/.."

profiles="kernels models models-compiled word2vec word2vec-cpu quality contrastive gpt gpt-quality patch lm mim pretext electra masked points audio tune:<case> selftest"
usage() { echo "usage: bash benchmarks/run_gpu.sh --profile {${profiles// /|}} [--dry-run|--stage] | --list" >&2; exit 2; }

profile="" mode=run
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:-}"; shift 2 || usage ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --dry-run) mode=dry; shift ;;
    --stage) mode=stage; shift ;;
    --list) mode=list; shift ;;
    *) usage ;;
  esac
done

data_of() {  # the files of ../shared/data a profile reads
  case "$1" in
    models|models-compiled) echo "docs9m.txt.xz bert-uncased-vocab.txt" ;;
    word2vec|word2vec-cpu) echo "corpus20m.txt.xz eval" ;;
    quality) echo "docs9m.txt.xz bert-uncased-vocab.txt fashion-mnist" ;;
    gpt-quality) echo "docs9m.txt.xz fashion-mnist" ;;
    lm) echo "docs9m.txt.xz" ;;
    masked) echo "ucr" ;;  # not in ../shared/data: --stage copies it from the installed aeon wheel
    audio) echo "spoken-words" ;;  # not in ../shared/data: --stage synthesises it with the espeakng-loader wheel
    electra) echo "docs9m.txt.xz bert-uncased-vocab.txt" ;;
    mim|pretext) echo "fashion-mnist" ;;
    *) echo "" ;;
  esac
}

if [ "$mode" = list ]; then
  for p in $profiles; do echo "$p: data [$(data_of "$p")]"; done
  exit 0
fi
case "$profile" in kernels|models|models-compiled|word2vec|word2vec-cpu|quality|contrastive|gpt|gpt-quality|patch|lm|mim|pretext|electra|masked|points|audio|tune:?*|selftest) ;; *) usage ;; esac

D=".gpu-data"
export PYTHONUNBUFFERED=1 FASTPRETRAIN_CACHE="${FASTPRETRAIN_CACHE:-/tmp/fastpretrain-cache}" FASTPRETRAIN_DATA="$PWD/$D"
deadline_s="${GPU_DEADLINE_S:-480}"
start_s=$(date +%s)
if [ -n "${OUT:-}" ]; then out="/tmp/fastpretrain-gpu/results"; rm -rf "$out"; mkdir -p "$OUT"; else out="$PWD/benchmarks/results"; fi
mkdir -p "$out"
summary="$out/summary.txt"
[ "$mode" = run ] && : > "$summary"
planned=0 built=1 failed=0

repack() {  # everything so far into $OUT/results.tgz, replaced in one rename
  [ -n "${OUT:-}" ] || return 0
  tar czf "$OUT/.results.tgz.tmp" -C "$out" . && mv -f "$OUT/.results.tgz.tmp" "$OUT/results.tgz"
  cp -f "$summary" "$OUT/summary.txt"
}

# section NAME BUDGET_S COMMAND...: run COMMAND with a time budget, log, summary line, repack.
section() {
  local name="$1" budget="$2"; shift 2
  planned=$((planned + budget))
  if [ "$mode" = dry ]; then printf '%-22s %4d s  %s\n' "$name" "$budget" "$*"; return 0; fi
  local left=$((deadline_s - ($(date +%s) - start_s)))
  if [ "$built" = 0 ] || [ "$left" -lt 10 ]; then
    echo "$name rc=skipped seconds=0 budget=$budget ($([ "$built" = 0 ] && echo 'build failed' || echo 'deadline'))" | tee -a "$summary"
    failed=1; repack; return 0
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  echo "== $name (budget ${budget} s)"
  local t0=$(date +%s)
  timeout -k 10 "$budget" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$out/$name.log"
  echo "$name rc=$rc seconds=$(($(date +%s) - t0)) budget=$budget" | tee -a "$summary"
  [ "$rc" = 0 ] || failed=1
  [ -n "${OUT:-}" ] && cp -f "$out/$name.log" "$OUT/last_section.log"
  repack
  return $rc
}

build() {
  section build 100 python3 -m pip install --no-build-isolation --no-deps -e . || built=0
  [ "$mode" = run ] && [ "$built" = 1 ] && {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu_env.txt" 2>&1
    (cd /tmp && python3 -c "import torch, triton, fastpretrain._C, fastpretrain.kernels as k; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, 'kernels', k.__file__)") >> "$out/gpu_env.txt" 2>&1 || built=0
    echo "commit ${FASTPRETRAIN_COMMIT:-unknown}" >> "$out/gpu_env.txt"
  }
  return 0
}

if [ "$mode" = stage ]; then
  rm -rf "$D" && mkdir -p "$D"
  for f in $(data_of "$profile"); do
    if [ "$f" = ucr ]; then python3 benchmarks/quality_masked.py --stage "$D/ucr" || exit 1; continue; fi
    if [ "$f" = spoken-words ]; then python3 benchmarks/quality_masked_audio.py --stage "$D/spoken-words" || exit 1; continue; fi
    cp -r "../shared/data/$f" "$D/" || exit 1
  done
  size=$(du -sm "$D" | cut -f1)
  echo "staged [$(data_of "$profile")] into $D: ${size} MiB"
  [ "$size" -lt 60 ] || { echo "run_gpu.sh: $D is ${size} MiB, over the 60 MiB a device call can carry" >&2; exit 1; }
  echo "device call: carry [\"$D\"], command: OUT=\$OUT FASTPRETRAIN_COMMIT=$(git rev-parse --short=12 HEAD) bash benchmarks/run_gpu.sh --profile $profile"
  exit 0
fi

for f in $(data_of "$profile"); do
  [ "$mode" = dry ] || [ -e "$D/$f" ] || { echo "run_gpu.sh: $D/$f missing: stage it first (--stage) and carry $D" >&2; exit 1; }
done

[ "$profile" = selftest ] || build
case "$profile" in
  selftest)  # the wrapper itself, on any machine: a section that finishes, one cut at its budget, one past the deadline
    section finishes 5 bash -c "echo done > '$out/finished.txt'"
    section cut 2 sleep 30
    section late 5 sleep 1
    ;;
  kernels)
    # bf16/fp16 kernel tests (float32 on one shape: its 'ieee' compiles take 10-50 s each), then attention vs SDPA / FlexAttention.
    section tests 220 bash -c "cd tests && python3 -m pytest -m gpu -n 16 --timeout 200 -q -p no:cacheprovider --junitxml='$out/tests.xml' ."
    section attention 150 python3 benchmarks/bench_attention.py --out "$out"
    ;;
  models|models-compiled)
    compiled=$([ "$profile" = models ] && echo --no-compile || echo --compile)
    section bert 160 python3 benchmarks/bench_bert.py --corpus "$D/docs9m.txt.xz" --vocab "$D/bert-uncased-vocab.txt" $compiled --out "$out"
    section mae 110 python3 benchmarks/bench_mae.py $compiled --out "$out"
    if [ "$profile" = models ]; then
      section cross-entropy 50 python3 benchmarks/bench_cross_entropy.py --out "$out"
      section masking 50 python3 benchmarks/bench_masking.py --out "$out"
    fi
    ;;
  word2vec)
    section bench-word2vec 120 python3 benchmarks/bench_word2vec.py --corpus "$D/corpus20m.txt.xz" --questions "$D/eval/questions-words.txt" --out "$out"
    section sampled-softmax 30 python3 benchmarks/bench_sampled_softmax.py --out "$out"
    section quality-word2vec 220 python3 benchmarks/quality_word2vec.py --engine ours --corpus "$D/corpus20m.txt.xz" --eval-dir "$D/eval" --methods sg-ns,cbow-ns,sg-hs --out "$out"
    ;;
  word2vec-cpu)
    # The C++ Hogwild loop on the box's 16 cores (gensim is not installed there: ours alone, beside the 2-core same-run table).
    section word2vec-cpu-16 150 python3 benchmarks/bench_word2vec_cpu.py --engines ours --epochs 1 --workers 16,8 --corpus "$D/corpus20m.txt.xz" --eval-dir "$D/eval" --tag _16cores --out "$out"
    ;;
  quality)
    section quality-bert 190 python3 benchmarks/quality_bert.py --corpus "$D/docs9m.txt.xz" --vocab "$D/bert-uncased-vocab.txt" --size mini --max-len 128 --batch-size 128 --tokens 20e6 --out "$out"
    section quality-mae 180 python3 benchmarks/quality_mae.py --steps 2000 --tag _gpu --out "$out"
    ;;
  contrastive)
    # CLIP's loss fused vs materialised at N = 64k..8k (largest first: a cut run keeps the headline rows), then the
    # InfoNCE / SigLIP kernel tests (fp16/bf16, fp32 on one shape; the kernels profile runs them too).
    section bench-infonce 270 python3 benchmarks/bench_infonce.py --out "$out"
    section tests-infonce 90 bash -c "cd tests && python3 -m pytest -m gpu -n 16 --timeout 80 -q -p no:cacheprovider --junitxml='$out/tests_infonce.xml' ops/test_infonce.py"
    ;;
  gpt)
    # GPT-2 124M B=16 S=1024 step: ours (dense and packed) vs HF sdpa, eager and compiled; then GPT's learning tests on CUDA.
    section bench-gpt 290 python3 benchmarks/bench_gpt.py --out "$out"
    section tests-gpt 60 bash -c "cd tests && python3 -m pytest -q -p no:cacheprovider --junitxml='$out/tests_gpt.xml' models/test_gpt.py models/test_gpt_learning.py"
    ;;
  patch)
    # fastpretrain.patch on HF BERT-base (padded, varlen), GPT-2 124M, ViTMAE-base and timm ViT-B/16: unpatched vs patched vs + compile.
    section patch-bert 85 python3 benchmarks/bench_patch.py --model bert --out "$out"
    section patch-gpt2 85 python3 benchmarks/bench_patch.py --model gpt2 --out "$out"
    section patch-vit-mae 85 python3 benchmarks/bench_patch.py --model vit_mae --out "$out"
    section patch-timm-vit 75 python3 benchmarks/bench_patch.py --model timm_vit --out "$out"
    ;;
  lm)
    # NNLM (sampled vs full softmax, equal steps, held-out perplexity, tokens/s); ELMo steps: ours vs eager full softmax vs AllenNLP's CPU sampler; sampled-softmax and ELMo tests on CUDA.
    section bench-nnlm 150 python3 benchmarks/bench_nnlm.py --gpu --corpus "$D/docs9m.txt.xz" --out "$out"
    section bench-elmo 130 python3 benchmarks/bench_elmo.py --out "$out"
    section tests-lm 80 bash -c "cd tests && python3 -m pytest -q -p no:cacheprovider --junitxml='$out/tests_lm.xml' data/test_candidates.py nn/test_sampled_softmax_head.py models/test_nnlm.py models/test_elmo.py"
    ;;
  gpt-quality)
    # GPT packed vs unpacked rows at equal tokens (a BPE trained on docs9m), then iGPT AR vs BERT-style probes on Fashion-MNIST.
    section quality-gpt 200 python3 benchmarks/quality_gpt.py --corpus "$D/docs9m.txt.xz" --size mini --seq-len 512 --batch-size 32 --tokens 6e6 --eval-rows 400 --label gpu --out "$out"
    section quality-igpt 170 python3 benchmarks/quality_igpt.py --model igpt_mini --image-size 28 --steps 400 --batch-size 64 --label gpu --out "$out"
    ;;
  mim)
    # BEiT-B/16 step: ours (relative bias through the fused attention, fused CE) vs HF BeitForMaskedImageModeling sdpa / eager;
    # SimMIM ViT-B/16: kernels vs the eager path; the attention-bias kernel tests in bf16/fp16; MAE / SimMIM / BEiT probes.
    section bench-beit 130 python3 benchmarks/bench_mim.py --model beit --out "$out"
    section bench-simmim 70 python3 benchmarks/bench_mim.py --model simmim --out "$out"
    section tests-attn-bias 60 bash -c "cd tests && python3 -m pytest -m gpu -q -p no:cacheprovider --junitxml='$out/tests_attn_bias.xml' ops/test_attention.py -k bias"
    section quality-mim 110 python3 benchmarks/quality_mim.py --steps 600 --dvae-steps 600 --probe-train 20000 --probe-test 5000 --tag _gpu --out "$out"
    ;;
  pretext)
    # CNN pretext tasks (inpainting L2, L2 + adversarial, colorization-style bins) beside MAE at equal steps, probes.
    section quality-pretext 330 python3 benchmarks/quality_pretext.py --steps 600 --probe-train 20000 --probe-test 5000 --tag _gpu --out "$out"
    ;;
  electra)
    # ELECTRA vs BERT (MLM) at equal training FLOPs, BERT-mini's encoder (ELECTRA's generator 1/4 wide), [CLS] probes.
    section quality-electra 340 python3 benchmarks/quality_electra.py --corpus "$D/docs9m.txt.xz" --vocab "$D/bert-uncased-vocab.txt" --size mini --batch-size 128 --bert-tokens 15e6 --lr 5e-4 --attention-dropout 0.1 --label gpu --out "$out"
    ;;
  masked)
    # Masked modeling of time series (UCR / UEA from the staged aeon files): masked_groups_tiny, Ti-MAE and span recipes,
    # 3 seeds x 4 datasets, probes (rows saved as they come: a run cut at its budget keeps the finished ones).
    section quality-masked 360 python3 benchmarks/quality_masked.py --data-dir "$D/ucr" --steps 1000 --seeds 0 1 2 --recipes mae span --tag _gpu --out "$out"
    ;;
  points)
    # Point-cloud ops (FPS, kNN, Chamfer) vs the eager references and their kernel tests on the GPU; Point-MAE /
    # GeoMAE on synthetic clouds (data generated in the script), masked_groups_tiny, 2 targets x 2 seeds, probes.
    section tests-points 60 bash -c "cd tests && python3 -m pytest -m gpu -q -p no:cacheprovider --junitxml='$out/tests_points.xml' ops/test_points.py"
    section bench-points 80 python3 benchmarks/bench_points.py --out "$out"
    section quality-masked-points 220 python3 benchmarks/quality_masked_points.py --steps 2000 --clouds 4096 --probe 2000 --seeds 0 1 --tag _gpu --out "$out"
    ;;
  audio)
    # Masked modeling of speech frames on the staged spoken-words cache (eSpeak is not installed there): masked_groups_tiny,
    # HuBERT k-means and raw-value targets, 2 seeds x 3000 steps, word probes on unseen voices (rows saved as they come).
    section quality-masked-audio 300 env FASTPRETRAIN_CACHE="$D/spoken-words" python3 benchmarks/quality_masked_audio.py --steps 3000 --seeds 0 1 --tag _gpu --out "$out"
    ;;
  tune:*)
    section tune 370 python3 benchmarks/tune_attention.py --cases "${profile#tune:}" --out "$out"
    ;;
esac

if [ "$mode" = dry ]; then
  printf '%-22s %4d s  (deadline %d s)\n' total "$planned" "$deadline_s"
  [ "$planned" -lt "$deadline_s" ] || { echo "run_gpu.sh: profile $profile plans ${planned} s, over the ${deadline_s} s deadline" >&2; exit 1; }
  exit 0
fi
echo "== summary ($(($(date +%s) - start_s)) s)"
cat "$summary"
repack
exit $failed
