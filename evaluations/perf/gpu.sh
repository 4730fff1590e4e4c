#!/usr/bin/env bash
# The GPU figures of robust-glo in one command (about 5 minutes on one H100/H200):
#   bash evaluations/perf/gpu.sh              population training vs sequential (small-cnn on Fashion-MNIST,
#                                             allcnn-c and resnet20 on synthetic CIFAR-shaped data), attack
#                                             throughput, and fashion-mnist-full's wall time from a stated
#                                             fraction of it; then attacks batched across networks
#                                             (population_attacks.py: P = 1, 4, 15 networks one by one vs as
#                                             one population, and whether their per-image outcomes agree); then
#                                             the population's training step eager, under torch.compile and as
#                                             a CUDA graph (gpu_step_variants.py: P = 8, 28, 64)
#   bash evaluations/perf/gpu.sh --smoke      the same at tiny sizes on any machine, CPU included (< 1 min)
# Extra arguments go to evaluations/perf/gpu_population.py (--json PATH, --parts, --steps, --amp).
# Python: $PYTHON, else the project's .venv, else python3 (which then needs torch, cma, torchattacks,
# pandas, scipy, statsmodels, scikit-learn). Fashion-MNIST is read from $ROBUST_GLO_DATA/fashion-mnist
# or the Debian package's folder; without it the small-cnn figures use synthetic data and say so.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -n "${PYTHON:-}" ]]; then py="$PYTHON"
elif [[ -x "$here/.venv/bin/python" ]]; then py="$here/.venv/bin/python"
else py=python3
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$py" "$here/evaluations/perf/gpu_population.py" "$@"
# The attack part takes --smoke (then at P = 1, 2 only) and --device from the arguments above.
extra=()
steps=()
previous=""
for arg in "$@"; do
    [[ "$arg" == "--smoke" ]] && { extra+=(--smoke --sizes 1,2); steps+=(--smoke); }
    [[ "$previous" == "--device" ]] && { extra+=(--device "$arg"); steps+=(--device "$arg"); }
    previous="$arg"
done
"$py" "$here/evaluations/perf/population_attacks.py" "${extra[@]}" \
    --out "${POPULATION_ATTACKS_OUT:-runs/perf/population_attacks.json}"
exec "$py" "$here/evaluations/perf/gpu_step_variants.py" "${steps[@]}" \
    --json "${STEP_VARIANTS_OUT:-runs/perf/gpu_step_variants.json}"
