#!/bin/bash
# The release-vs-lab comparison of docs/algorithm.md: both variants, cpu preset, 30k steps, two tasks,
# seeds 1 and 2. Resumable: a run that has a checkpoint continues (`--resume`), a finished one is skipped.
# Runs two at a time, one torch thread each (two 2-thread runs on 2 cores thrash). When all are done,
# measure them:  mbdpo-lab fidelity runs/fidelity/* --csv docs/data/fidelity.csv --episodes 5
#
#   scripts/fidelity_runs.sh [RUNS_DIR]     (default runs/fidelity)
set -u
cd "$(dirname "$0")/.."
out=${1:-runs/fidelity}
mkdir -p "$out"
export OMP_NUM_THREADS=1
jobs_list=()
for task in cartpole-swingup reacher-easy; do
  for variant in lab release; do
    for seed in 1 2; do
      name=$variant-$task-s$seed
      [ "$variant" = lab ] && [ -d "$out/ours-$task-s$seed" ] && name=ours-$task-s$seed  # named before the variants
      jobs_list+=("$name $task $variant $seed")
    done
  done
done
running=0
for job in "${jobs_list[@]}"; do
  read -r name task variant seed <<< "$job"
  dir=$out/$name
  if grep -q '"state": "finished"' "$out/$name.log" 2>/dev/null; then continue; fi
  if [ -f "$dir/checkpoints/last.safetensors" ]; then
    cmd=(.venv/bin/mbdpo-lab train --out "$dir" --resume --no-progress)
  else
    rm -rf "$dir"
    cmd=(.venv/bin/mbdpo-lab train --task "$task" --preset cpu --steps 30000 --seed "$seed" --out "$dir"
         --no-progress --set variant="$variant" --set eval_episodes=5)
  fi
  nice -n 19 "${cmd[@]}" >> "$out/$name.log" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
