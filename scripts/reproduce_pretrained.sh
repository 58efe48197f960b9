#!/usr/bin/env bash
# Re-train every shipped agent from scratch with the exact command in mbdpo_lab/data/pretrained/manifest.json,
# then re-export it over the shipped one (10-episode evaluation, sha256, manifest entry). Pass names to do only some:
#   scripts/reproduce_pretrained.sh cartpole-swingup reacher-easy mt5-s
# A generalist (multi-task model) first collects its dataset with the manifest's command (unless runs/<dataset>
# is there), then pretrains and is re-exported with export-generalist.
# Runs go to runs/<name>; a 50k-step cpu-preset run takes 1.5-3 hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
entries=$("$BIN/python" - "$@" <<'PY'
import json, sys
manifest = json.load(open("mbdpo_lab/data/pretrained/manifest.json"))
agents, generalists = manifest["agents"], manifest.get("generalists", {})
known = {**agents, **generalists}
wanted = sys.argv[1:] or sorted(known)
for name in wanted:
    if name not in known:
        sys.exit(f"unknown pretrained name {name!r}; available: {', '.join(sorted(known))}")
    e = known[name]
    if name in generalists:
        print("\t".join(["generalist", name, e["command"], "runs/" + e["dataset"], e["dataset_command"]]))
    else:
        print("\t".join(["agent", name, e["command"], "", ""]))
PY
)
run() {  # a manifest command, split into words (it holds no quoted spaces)
  read -ra argv <<< "$1"
  "$BIN/${argv[0]}" "${argv[@]:1}"
}
while IFS=$'\t' read -r kind name cmd dataset collect; do
  echo "== $name: $cmd"
  rm -rf "runs/$name"
  if [ "$kind" = generalist ]; then
    [ -d "$dataset" ] || run "$collect"
    run "$cmd"
    "$BIN/mbdpo-lab" export-generalist --run "runs/$name" --name "$name" --replace
  else
    run "$cmd"
    "$BIN/mbdpo-lab" export --run "runs/$name" --name "$name" --replace  # the point: replace the shipped one
  fi
done <<< "$entries"
