#!/usr/bin/env bash
# Re-train every shipped agent from scratch with the exact command in mbdpo_lab/data/pretrained/manifest.json,
# then re-export it over the shipped one (10-episode evaluation, sha256, manifest entry). Pass names to do only some:
#   scripts/reproduce_pretrained.sh cartpole-swingup reacher-easy
# Runs go to runs/<name>; a 50k-step cpu-preset run takes 1.5-3 hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
entries=$("$BIN/python" - "$@" <<'PY'
import json, sys
agents = json.load(open("mbdpo_lab/data/pretrained/manifest.json"))["agents"]
wanted = sys.argv[1:] or sorted(agents)
for name in wanted:
    if name not in agents:
        sys.exit(f"unknown pretrained name {name!r}; available: {', '.join(sorted(agents))}")
    print(name + "\t" + agents[name]["command"])
PY
)
while IFS=$'\t' read -r name cmd; do
  echo "== $name: $cmd"
  rm -rf "runs/$name"
  read -ra argv <<< "$cmd"  # the manifest command, split into words (it holds no quoted spaces)
  "$BIN/${argv[0]}" "${argv[@]:1}"
  "$BIN/mbdpo-lab" export --run "runs/$name" --name "$name" --replace  # the point: replace the shipped one
done <<< "$entries"
