"""scripts/reproduce_pretrained.sh runs each manifest command as the CLI would receive it."""
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "mbdpo_lab" / "data" / "pretrained" / "manifest.json"


def test_reproduce_script_passes_manifest_commands_word_by_word(tmp_path):
    # A copy of the script and manifest, and a fake CLI that records its arguments: nothing trains.
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "reproduce_pretrained.sh", tmp_path / "scripts")
    (tmp_path / "mbdpo_lab" / "data" / "pretrained").mkdir(parents=True)
    shutil.copy(MANIFEST, tmp_path / "mbdpo_lab" / "data" / "pretrained")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    fake = bin_dir / "mbdpo-lab"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$(dirname "$0")/calls.txt"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    agents = json.loads(MANIFEST.read_text())["agents"]
    name = sorted(agents)[0]
    env = dict(os.environ, BIN=str(bin_dir))
    subprocess.run(["bash", str(tmp_path / "scripts" / "reproduce_pretrained.sh"), name],
                   check=True, env=env, capture_output=True, text=True)
    calls = (bin_dir / "calls.txt").read_text().splitlines()
    assert calls[0].split() == agents[name]["command"].split()[1:]
    assert calls[1].split() == ["export", "--run", f"runs/{name}", "--name", name, "--replace"]

    generalists = json.loads(MANIFEST.read_text())["generalists"]
    name = sorted(generalists)[0]
    (bin_dir / "calls.txt").unlink()
    subprocess.run(["bash", str(tmp_path / "scripts" / "reproduce_pretrained.sh"), name],
                   check=True, env=env, capture_output=True, text=True)
    calls = (bin_dir / "calls.txt").read_text().splitlines()
    entry = generalists[name]
    assert calls[0].split() == entry["dataset_command"].split()[1:]  # its dataset first (none there yet)
    assert calls[1].split() == entry["command"].split()[1:]
    assert calls[2].split() == ["export-generalist", "--run", f"runs/{name}", "--name", name, "--replace"]

    bad = subprocess.run(["bash", str(tmp_path / "scripts" / "reproduce_pretrained.sh"), "no-such-agent"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "available:" in bad.stderr
