"""`mbdpo-lab`: train, evaluate, benchmark and inspect agents from a shell.

Bad input (unknown task, unknown config key, missing or corrupt checkpoint) exits with status 2 and
one line that says what to do; no bare tracebacks.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import (CheckpointError, ConfigError, LessonFailed, ObservationError, RenderingUnavailable,
                     TrainingDiverged, UnknownTaskError, UsageError)


def _count(minimum: int):
    """An argparse type: an integer of at least ``minimum`` (argparse turns the error into one line, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (repeatable), e.g. --set eta=0 --set num_samples=256")


def _add_compare_anchor(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare-anchor", help="train (or load) agents that differ only in eta and report what the anchor does",
        description="Train eta=0 and eta=default (and --eta-large) with the same config and seed, or measure "
                    "--checkpoints; writes anchor_metrics.csv and a self-contained anchor_report.html to --out.")
    p.add_argument("--task", default="cartpole-swingup")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=_count(0), default=None, help="environment steps per agent, one act + one update each (default: the preset's)")
    p.add_argument("--seed", type=_count(0), default=1)
    p.add_argument("--out", required=True, help="directory for the CSVs, the HTML report and the runs")
    p.add_argument("--eta-large", type=float, default=None, help="also train a third agent with this eta")
    p.add_argument("--checkpoints", nargs="+", default=None, metavar="CKPT",
                   help="measure two or three trained agents (paths, run dirs or pretrained names) instead; "
                        "runs that differ only in their seed are one arm, with CIs over seeds")
    p.add_argument("--metric-episodes", type=_count(1), default=None,
                   help="noise-free episodes per evaluation for the metrics (default: eval_episodes; 10 with "
                        "--checkpoints)")
    p.add_argument("--tail", choices=["steady", "mask", "none"], default="steady",
                   help="how the realised return treats the episode's time limit")
    p.add_argument("--sweep-etas", default=None, help="comma-separated eta values for the sweep")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field of both agents (repeatable); eta sets the anchored agent's")
    return p


def _add_run_flags(p, out_help: str) -> None:
    """The flags every training command shares: seed, device, the run directory, resume, progress bar."""
    p.add_argument("--seed", type=_count(0), default=1)
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbdpo-lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("tasks", help="list task names (the DMControl suite and the Jaco manipulation tasks)")
    p = sub.add_parser("config", help="print a preset's config (all keys and values)")
    p.add_argument("--preset", default="paper")
    _add_set(p)
    sub.add_parser("pretrained", help="list shipped pretrained agents")

    p = sub.add_parser("train", help="train an agent online")
    p.add_argument("--task", default="cartpole-swingup")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=_count(0), default=None, help="environment steps, one act + one update each (default: the preset's)")
    _add_run_flags(p, "run directory (config.json, metrics.csv, checkpoints, videos)")
    p.add_argument("--save-replay", default=None, metavar="DIR",
                   help="when training ends, keep the whole replay as an offline dataset in DIR")
    _add_set(p)

    p = sub.add_parser("pretrain", help="offline multi-task pretraining on a dataset (updates only, per-task evaluation)",
                       description="MBDPO's losses on a multi-task dataset (`collect`, `train --save-replay`, "
                                   "`convert-tdmpc2`): one step is one update; every eval_every updates each task "
                                   "is evaluated in its environment. Model size: --set model_size=1|5|19|48|317.")
    p.add_argument("--data", default=None, help="dataset folder (card.json and chunks); on --resume the run's own")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--updates", type=_count(1), default=None, help="gradient updates (default: the preset's steps)")
    _add_run_flags(p, "run directory (config.json, metrics.csv, checkpoints)")
    _add_set(p)

    p = sub.add_parser("finetune", help="offline-to-online: fine-tune a pretrained multi-task agent on a new task",
                       description="A new task embedding initialised from the most similar pretraining task "
                                   "(or --source), fresh optimisers, no random seed phase; then online training.")
    p.add_argument("--from", dest="from_", default=None, metavar="CKPT",
                   help="a checkpoint of `mbdpo-lab pretrain` (agent.safetensors or checkpoints/last.safetensors)")
    p.add_argument("--task", default=None, help="the new task (mbdpo-lab tasks)")
    p.add_argument("--source", default=None, help="the pretraining task whose embedding it starts from")
    p.add_argument("--steps", type=_count(1), default=None, help="online environment steps (default: the config's)")
    _add_run_flags(p, "run directory (as `train`'s: resume, dashboards and curves read it)")
    _add_set(p)

    p = sub.add_parser("offline-to-online", help="fine-tuned vs from scratch on a new task, over seeds (curves)",
                       description="For every seed: `finetune` from --from and the same config trained from "
                                   "scratch, both for --steps online steps (run again to resume); writes "
                                   "OUT/curves.csv (IQM and 95% CI per arm) and OUT/curves.html.")
    p.add_argument("--from", dest="from_", required=True, metavar="CKPT", help="a `mbdpo-lab pretrain` checkpoint")
    p.add_argument("--task", required=True, help="the new (held-out) task")
    p.add_argument("--source", default=None, help="the pretraining task whose embedding it starts from")
    p.add_argument("--steps", type=_count(1), default=40_000, help="online steps of each run (the paper: 40k)")
    p.add_argument("--seeds", type=_count(0), nargs="+", default=[1, 2, 3])
    p.add_argument("--out", required=True, help="folder of the runs (finetune-sN, scratch-sN) and the curves")
    _add_set(p)

    p = sub.add_parser("scaling", help="the scaling study: pretrain several model sizes on one dataset, same updates",
                       description="Each --sizes entry pretrains for --updates updates (resumable: run the same "
                                   "command again) and is evaluated at the end; writes OUT/scaling.csv and the "
                                   "figure (HTML and PNG). --table prints every size's parameters and memory.")
    p.add_argument("--data", default=None, help="multi-task dataset folder (mbdpo-lab collect)")
    p.add_argument("--sizes", nargs="+", default=["xs", "s", "m", "1"], help="xs s m (CPU) and 1 5 19 48 317 (paper)")
    p.add_argument("--updates", type=_count(1), default=20_000)
    p.add_argument("--episodes", type=_count(1), default=10, help="evaluation episodes per task at the end")
    p.add_argument("--seed", type=_count(0), default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="study folder: one pretraining run per size, scaling.csv, figures")
    p.add_argument("--table", action="store_true", help="only print the sizes' parameters and memory (markdown)")

    p = sub.add_parser("collect", help="record episodes of agents (with exploration noise) as an offline dataset",
                       description="Every --checkpoint x every --noise: --episodes episodes each, all into one "
                                   "dataset (several agents of different tasks make a multi-task one).")
    p.add_argument("--checkpoint", required=True, nargs="+", help="checkpoints (.safetensors) or pretrained names")
    p.add_argument("--episodes", type=_count(1), default=10, help="episodes per checkpoint and noise level")
    p.add_argument("--noise", type=float, nargs="+", default=[0.1],
                   help="std of the Gaussian noise added to every action (several: a spread from expert to poor)")
    p.add_argument("--out", required=True, help="dataset folder (card.json and chunk files)")
    p.add_argument("--seed", type=_count(0), default=0)
    p.add_argument("--lockstep", type=_count(1), default=10, help="episodes run at once (one batched planner call)")
    p.add_argument("--device", default=None)
    _add_set(p)

    p = sub.add_parser("convert-tdmpc2", help="convert TD-MPC2 mt30/mt80 chunk files (pickles) into a dataset")
    p.add_argument("files", nargs="+", metavar="CHUNK.pt")
    p.add_argument("--task-set", choices=["mt30", "mt80"], required=True)
    p.add_argument("--out", required=True, help="dataset folder")
    p.add_argument("--trust-pickle", action="store_true",
                   help="required: the files are pickles and run code when read; only for files you trust")

    p = sub.add_parser("eval", help="evaluate a checkpoint; prints one JSON line")
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint or a pretrained name")
    p.add_argument("--task", default=None, help="which task of a multi-task checkpoint (default: the one it was "
                                                "fine-tuned on)")
    p.add_argument("--episodes", type=_count(1), default=10)
    p.add_argument("--video", default=None, help="write the first episode to this mp4")
    p.add_argument("--planner", choices=["diffusion", "mppi", "policy", "score"], default=None)
    p.add_argument("--seed", type=_count(0), default=0)
    p.add_argument("--device", default=None)
    _add_set(p)

    p = sub.add_parser("latents", help="collect latent paths of a checkpoint and project them (UMAP/PCA)",
                       description="With several checkpoints, each goes to OUT/<name>/ and their contrast (gaits "
                                   "beside goal-directed tasks, one projection each) to OUT/contrast.html and .png.")
    p.add_argument("--checkpoint", required=True, nargs="+",
                   help="one or more .safetensors checkpoints or pretrained names")
    p.add_argument("--episodes", type=_count(1), default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--method", choices=["umap", "pca"], default="umap")
    p.add_argument("--task", default=None, help="which task of a multi-task checkpoint; 'all': every task of it, "
                                                "each to OUT/<task>/ and all in one map (OUT/tasks.html, .png)")
    p.add_argument("--dims", type=int, choices=[2, 3], default=2)
    p.add_argument("--frames", action="store_true", help="also store rendered frames (96x96)")
    p.add_argument("--max-steps", type=_count(1), default=None, help="cut episodes after this many agent steps")
    p.add_argument("--seed", type=_count(0), default=0)
    p.add_argument("--device", default=None)

    p = sub.add_parser("export", help="ship a trained run as a pretrained agent (mbdpo_lab/data/pretrained)")
    p.add_argument("--run", required=True, help="run directory written by `mbdpo-lab train`")
    p.add_argument("--name", required=True)
    p.add_argument("--episodes", type=_count(1), default=10)
    p.add_argument("--replace", action="store_true", help="overwrite a shipped agent of the same name")
    p.add_argument("--device-note", default=None,
                   help="where it was trained, for the manifest (default: from the checkpoint, e.g. cuda:0)")

    p = sub.add_parser("export-generalist", help="ship a multi-task pretraining run (mbdpo_lab/data/pretrained)",
                       description="Copies the run's acting weights and records its final evaluation of every "
                                   "task, its dataset and its command in the manifest's generalists section.")
    p.add_argument("--run", required=True, help="run directory written by `mbdpo-lab pretrain`")
    p.add_argument("--name", required=True)
    p.add_argument("--replace", action="store_true", help="overwrite a shipped generalist of the same name")
    p.add_argument("--device-note", default=None, help="where it was trained, for the manifest")

    p = sub.add_parser("import-checkpoint", help="convert a published TD-MPC2 or MBDPO checkpoint (.pt) into ours",
                       description="Reads the file with torch.load(weights_only=True): a pickle that would run "
                                   "code is refused. Writes a .safetensors agent (variant release) for eval, the "
                                   "widgets and the notebooks.")
    p.add_argument("file", metavar="FILE.pt", help="a single-task checkpoint: {'model': state_dict}")
    p.add_argument("--format", dest="fmt", choices=["tdmpc2", "mbdpo"], required=True)
    p.add_argument("--task", required=True, help="the task it was trained on (`mbdpo-lab tasks`)")
    p.add_argument("--out", dest="output", required=True, metavar="NAME.safetensors",
                   help="the converted checkpoint to write (refused if it exists, unless --replace)")
    p.add_argument("--replace", action="store_true", help="overwrite --out")

    p = sub.add_parser("score-policy", help="fit a score network to an agent and compare acting with it alone")
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint or a pretrained name")
    p.add_argument("--out", required=True, help="folder for agent.safetensors, score_policy.csv, fit_losses.csv")
    p.add_argument("--updates", type=_count(1), default=3000)
    p.add_argument("--batch-size", type=_count(1), default=32, help="latents per update")
    p.add_argument("--fit-episodes", type=_count(1), default=4, help="episodes whose latents the fit uses")
    p.add_argument("--score-output", choices=["score", "mean"], default="score",
                   help="what a new score network outputs: the score (the release) or the mean it implies")
    p.add_argument("--episodes", type=_count(1), default=10, help="evaluation episodes per planner")
    p.add_argument("--seed", type=_count(0), default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("fidelity", help="measure training runs for the release-vs-lab table (docs/algorithm.md)")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by `mbdpo-lab train`")
    p.add_argument("--csv", required=True, help="CSV to merge the rows into (e.g. docs/data/fidelity.csv)")
    p.add_argument("--episodes", type=_count(1), default=5, help="noise-free episodes for the over-estimation")
    p.add_argument("--seed", type=_count(0), default=0)

    p = sub.add_parser("book", help="build the course book: every lesson executed (fast mode) as a static site",
                       description="Executes notebooks/NN_*.ipynb in fast mode, freezes their widgets as static "
                                   "pictures and builds the site with Sphinx (MyST-NB, book theme) into OUT/html.")
    p.add_argument("--out", default="runs/book", help="output folder (OUT/html/index.html is the book)")
    p.add_argument("--notebooks", default=None, help="folder of the lesson notebooks (default: the repository's)")
    p.add_argument("--normal", action="store_true", help="execute with the normal budgets instead of fast mode")

    p = sub.add_parser("lessons", help="the notebooks' precomputed data: list and check it, or --build it again")
    p.add_argument("--build", nargs="*", metavar="NAME", default=None,
                   help="remake these assets (none named: all) from the shipped agents, into the package's data")

    p = sub.add_parser("sweep", help="train a grid of tasks x seeds x config values on Ray (local or a cluster)",
                       description="Every combination of --tasks, --grid values and --seeds, one run directory "
                                   "each under --out. Run the same command again to resume after a crash.")
    p.add_argument("--tasks", nargs="+", required=True, metavar="TASK")
    p.add_argument("--seeds", nargs="+", type=_count(0), required=True, metavar="SEED")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="config values to cross (repeatable), e.g. --grid eta=0,0.1 --grid variant=lab,release")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=_count(1), default=None, help="environment steps per trial (default: the preset's)")
    p.add_argument("--out", required=True, help="sweep directory: one run directory per trial, sweep_results.csv")
    p.add_argument("--address", default=None, help="an existing Ray cluster (HOST:PORT); default: a local one")
    p.add_argument("--num-cpus", type=_count(1), default=None, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    _add_set(p)

    _add_compare_anchor(sub)
    p = sub.add_parser("anchor-table", help="markdown table of compare-anchor output directories")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="directories written by compare-anchor --out")

    p = sub.add_parser("bench", help="time the planner and the update; prints one JSON line")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="planner precision")
    p.add_argument("--repeats", type=_count(1), default=10)
    p.add_argument("--obs-dim", type=_count(1), default=24)
    p.add_argument("--act-dim", type=_count(1), default=6)
    p.add_argument("--eval", type=_count(1), default=None, metavar="EPISODES",
                   help="instead: time an evaluation of EPISODES episodes one at a time and in lock-step")
    p.add_argument("--train-envs", type=_count(1), nargs="+", default=None, metavar="N",
                   help="instead: time training (steps/s after the seed phase) with each number of environments")
    p.add_argument("--train-steps", type=_count(1), default=200, help="transitions timed per --train-envs value")
    p.add_argument("--task", default="reacher-easy", help="the task of --eval and --train-envs")
    p.add_argument("--eval-steps", type=_count(1), default=50, help="steps per episode of --eval")
    _add_set(p)
    return parser


def _config(preset: str, overrides: list[str], **fields):
    from .config import make_config

    from .config import apply_overrides, validate

    values = {k: v for k, v in fields.items() if v is not None}
    cfg = make_config(preset, overrides=values)
    if overrides:
        apply_overrides(cfg, overrides)
        validate(cfg)
    if not any(o.split("=")[0].strip() == "episode_length" for o in overrides or []):
        from .envs import natural_episode_length
        from .errors import UnknownTaskError

        try:  # a manipulation task's episodes are shorter than the suite's: the discount and seed phase follow
            cfg.episode_length = min(cfg.episode_length, natural_episode_length(cfg.task, cfg.action_repeat))
        except UnknownTaskError:
            pass  # the command says so where it resolves the task
        validate(cfg)
    return cfg


def cmd_tasks(args) -> None:
    from .envs import list_tasks

    print("\n".join(list_tasks()))


def cmd_config(args) -> None:
    print(json.dumps(_config(args.preset, args.overrides).to_dict(), indent=2, sort_keys=True))


def cmd_pretrained(args) -> None:
    from .checkpoint import read_manifest

    for name, entry in sorted(read_manifest().items()):
        print(f"{name}\t{entry['task']}\teta={entry['eta']}\treturn={entry['eval_return_mean']:.1f}")
    for name, entry in sorted(read_manifest(section="generalists").items()):
        print(f"{name}\t{len(entry['tasks'])} tasks ({', '.join(entry['tasks'])})\t"
              f"params={entry['parameters']:,}\tscore={entry['normalised_score']:.1f}")


def _check_video(cfg) -> None:
    if cfg.save_video:
        from .rendering import check_video_output

        check_video_output()  # now, not at the first evaluation


def cmd_train(args) -> None:
    from .envs import resolve_task
    from .trainer import Trainer

    def build():
        cfg = _config(args.preset, args.overrides, task=args.task, steps=args.steps, seed=args.seed,
                      device=args.device)
        resolve_task(cfg.task)
        _check_video(cfg)
        return Trainer(cfg, Path(args.out))

    _drive(_resumed_or_new(args, build), args, Path(args.out))


def _resumed_or_new(args, build):
    """The run in --out continued (--resume), or a new one from ``build()`` where no run is yet."""
    from .trainer import Trainer

    out = Path(args.out)
    if args.resume:
        if not (out / "checkpoints" / "last.safetensors").exists():
            raise UsageError(f"nothing to resume in {out} (no checkpoints/last.safetensors)")
        return Trainer.resume_from(out, steps=args.steps, overrides=args.overrides, device=args.device)
    if (out / "metrics.csv").exists():
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    return build()


def _drive(trainer, args, out: Path) -> None:
    """Run a built trainer to its end with a progress bar; SIGTERM stops it cleanly; prints one JSON line."""
    from tqdm import tqdm

    cfg = trainer.cfg
    _check_video(cfg)
    save_replay = getattr(args, "save_replay", None)
    if save_replay and (Path(save_replay) / "card.json").exists():
        raise UsageError(f"--save-replay {args.save_replay} already holds a dataset; choose another folder")
    bar = tqdm(total=cfg.steps, initial=trainer.env_step, unit="step", disable=args.no_progress,
               dynamic_ncols=True)

    def on_event(event, data):
        if event == "episode":
            bar.set_postfix(ret=f"{data['episode_return']:.0f}", sps=f"{data['steps_per_s']:.0f}")
        elif event == "eval":
            bar.write(f"step {data['step']}: eval return {data['eval_return']:.1f} "
                      f"+- {data['eval_return_std']:.1f}")

    trainer.callbacks.append(on_event)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: trainer.stop())  # `kill` stops cleanly, like Ctrl-C
    try:
        trainer.complete(progress=bar.update)
    finally:
        bar.close()
    result = {"out": str(out), "state": trainer.state, "step": trainer.env_step,
              "eval_return": (trainer.last_eval or {}).get("mean_return")}
    if save_replay:
        from .datasets import write_replay

        write_replay(trainer.buffer.state_dict(), cfg.task, save_replay,
                     how=f"the replay of a {cfg.variant}-variant MBDPO run ({cfg.preset} preset, seed {cfg.seed}) over "
                         f"its {trainer.env_step} steps, seed phase included",
                     command=f"mbdpo-lab train --task {cfg.task} --preset {cfg.preset} --seed {cfg.seed} "
                             f"--steps {cfg.steps} --save-replay DIR")
        result["dataset"] = str(save_replay)
    print(json.dumps(result))


def cmd_finetune(args) -> None:
    from .trainer import Trainer

    def build():
        if args.from_ is None or args.task is None:
            raise UsageError("--from (a pretrained multi-task checkpoint) and --task (the new task) are required")
        from .finetune import prepare

        cfg, agent, source = prepare(args.from_, args.task, args.source, args.overrides, args.device)
        cfg.seed = args.seed
        if args.steps is not None:
            cfg.steps = args.steps
        print(f"fine-tuning {args.task}: its task embedding starts from {source}'s", file=sys.stderr)
        return Trainer(cfg, Path(args.out), agent=agent)

    _drive(_resumed_or_new(args, build), args, Path(args.out))


def cmd_pretrain(args) -> None:
    from tqdm import tqdm

    from .pretrain import Pretrainer

    out = Path(args.out)
    if args.resume:
        if not (out / "checkpoints" / "last.safetensors").exists():
            raise UsageError(f"nothing to resume in {out} (no checkpoints/last.safetensors)")
        trainer = Pretrainer.resume_from(out, args.data, updates=args.updates, overrides=args.overrides,
                                         device=args.device)
    else:
        if args.data is None:
            raise UsageError("--data is required: a dataset folder (make one with `mbdpo-lab collect`, "
                             "`train --save-replay` or `convert-tdmpc2`)")
        if (out / "metrics.csv").exists():
            raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        cfg = _config(args.preset, args.overrides, steps=args.updates, seed=args.seed, device=args.device)
        trainer = Pretrainer(cfg, args.data, out)
    cfg = trainer.cfg
    skipped = [t.name for t in trainer.agent.tasks if t.name not in trainer.evaluable]
    if skipped:
        print(f"not evaluated (no environment in this package): {', '.join(skipped)}", file=sys.stderr)
    bar = tqdm(total=cfg.steps, initial=trainer.updates, unit="update", disable=args.no_progress, dynamic_ncols=True)

    def on_event(event, data):
        if event == "train":
            bar.set_postfix(loss=f"{data['total_loss']:.3g}", ups=f"{data['updates_per_s']:.1f}")
        elif event == "eval":
            tasks = ", ".join(f"{k} {m:.0f}" for k, (m, _) in data["tasks"].items())
            bar.write(f"update {data['update']}: normalised score {data['normalised_score']:.1f} ({tasks})")

    trainer.callbacks.append(on_event)
    import signal

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))  # `kill` stops cleanly, with a checkpoint
    try:
        trainer.run(progress=bar.update, should_stop=lambda: bool(stop))
    finally:
        bar.close()
    print(json.dumps({"out": str(out), "updates": trainer.updates,
                      "normalised_score": (trainer.last_eval or {}).get("normalised_score")}))


def cmd_offline_to_online(args) -> None:
    from .experiments import offline_to_online as o2o

    path = o2o.run_comparison(args.from_, args.task, args.steps, args.seeds, args.out, source=args.source,
                              overrides=args.overrides, report=lambda m: print(m, file=sys.stderr))
    o2o.curves_figure(path, args.task).write_html(str(Path(args.out) / "curves.html"), include_plotlyjs=True)
    print(o2o.verdict(path), file=sys.stderr)
    print(json.dumps({"curves": str(path), "seeds": args.seeds}))


def cmd_scaling(args) -> None:
    from . import model_sizes
    from .experiments import scaling

    unknown = [s for s in args.sizes if s not in model_sizes.SIZES]
    if unknown:
        raise UsageError(f"unknown size {unknown[0]!r}; choose from {', '.join(model_sizes.SIZES)}")
    if args.table:
        print(model_sizes.sizes_table())
        return
    if args.data is None or args.out is None:
        raise UsageError("--data (a multi-task dataset) and --out (the study folder) are required")
    path = scaling.run_sizes(args.data, args.sizes, args.updates, args.out, episodes=args.episodes, seed=args.seed,
                             device=args.device, report=lambda m: print(m, file=sys.stderr))
    rows = scaling.read_rows(path)
    scaling.scaling_figure(rows).write_html(str(Path(args.out) / "scaling.html"), include_plotlyjs=True)
    scaling.save_scaling_png(rows, Path(args.out) / "scaling.png")
    summary = scaling.summary(rows)
    print(json.dumps({"csv": str(path), "monotonic": summary["monotonic"], "points": summary["points"]}))


def cmd_collect(args) -> None:
    from .datasets import DatasetWriter
    from .episodes import collect_episodes

    if (Path(args.out) / "card.json").exists():
        raise UsageError(f"--out {args.out} already holds a dataset; choose another folder")
    bad = [n for n in args.noise if not (n >= 0 and n == n)]
    if bad:
        raise UsageError(f"--noise must be numbers >= 0, got {bad[0]}")
    agents = [_load_agent(name, args.device, args.overrides).agent for name in args.checkpoint]  # all, before writing
    noises = " ".join(f"{n:g}" for n in args.noise)
    how = (f"episodes of {', '.join(args.checkpoint)} (each agent's own planner and eta) with N(0, s^2) noise on "
           f"every action, s in {{{', '.join(f'{n:g}' for n in args.noise)}}}, {args.episodes} per agent and s")
    command = (f"mbdpo-lab collect --checkpoint {' '.join(args.checkpoint)} --episodes {args.episodes} --noise "
               f"{noises} --seed {args.seed} --out DIR")
    returns: dict[str, list[float]] = {}
    with DatasetWriter(args.out, how, command) as writer:
        for k, agent in enumerate(agents):
            for j, noise in enumerate(args.noise):
                seed = args.seed + 1000 * (k * len(args.noise) + j)  # each (agent, noise) its own episodes
                for episode in collect_episodes(agent, args.episodes, noise, seed, lockstep=args.lockstep):
                    writer.add(agent.cfg.task, episode.obs, episode.actions, episode.rewards)
                    returns.setdefault(agent.cfg.task, []).append(episode.total_return)
    print(json.dumps({"out": args.out, "episodes": sum(map(len, returns.values())),
                      "mean_return": {task: float(sum(r) / len(r)) for task, r in returns.items()}}))


def cmd_convert_tdmpc2(args) -> None:
    from .datasets import convert_tdmpc2

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise UsageError(f"{missing[0]} is not a file")
    out = convert_tdmpc2(args.files, args.task_set, args.out, trust_pickle=args.trust_pickle)
    card = json.loads((out / "card.json").read_text())
    print(json.dumps({"out": str(out), "episodes": card["episodes"], "transitions": card["transitions"],
                      "tasks": [t["name"] for t in card["tasks"]]}))


def _load_agent(name_or_path: str, device, overrides):
    from .checkpoint import load_any

    return load_any(name_or_path, device=device, overrides=overrides)


def _task_of(agent, checkpoint: str, task: str | None) -> str:
    """The task a loaded agent acts for: a multi-task agent's is ``task`` (or the one it was fine-tuned on),
    bound for the rest of the command; a single-task agent's is its own."""
    if agent.tasks:
        if task is None and agent.bound_task is None:
            raise UsageError(f"{checkpoint} is multi-task: pass --task ({', '.join(t.name for t in agent.tasks)})")
        agent.bound_task = agent.task_index(task if task is not None else agent.bound_task)
        return agent.tasks[agent.bound_task].name
    if task not in (None, agent.cfg.task):
        raise UsageError(f"{checkpoint} was trained on {agent.cfg.task}; it cannot act on {task}")
    return agent.cfg.task


def cmd_eval(args) -> None:
    from .envs import MEASURE_SEED_OFFSET, make_env
    from .trainer import evaluate, seed_everything

    if args.video:
        from .rendering import check_video_output

        check_video_output(args.video)
    ckpt = _load_agent(args.checkpoint, args.device, args.overrides)
    agent, cfg = ckpt.agent, ckpt.agent.cfg
    task = _task_of(agent, args.checkpoint, args.task)
    seed_everything(args.seed)
    with make_env(task, seed=args.seed + MEASURE_SEED_OFFSET, action_repeat=cfg.action_repeat,
                  episode_length=cfg.episode_length) as env:
        result = evaluate(agent, env, args.episodes, planner=args.planner,
                          video_size=cfg.video_size if args.video else 0, seed=args.seed)
    if args.video:
        from .rendering import write_video

        write_video(args.video, result["frames"])
    out = {k: v for k, v in result.items() if k != "frames"}
    out.update(task=task, planner=args.planner or cfg.planner, eta=cfg.eta, checkpoint=args.checkpoint)
    if args.video:
        out["video"] = args.video
    print(json.dumps(out))


def _latents_of_one(ckpt, task: str, args, out: Path) -> tuple[object, dict]:
    """Collect, save and project one loaded checkpoint's latent paths into ``out``; (rollouts, summary)."""
    import time

    from .analysis import collect_latents, project, structure_metrics
    from .analysis.figures import save_projection_html, save_projection_png
    from .envs import LATENTS_SEED_OFFSET, make_env

    cfg = ckpt.agent.cfg
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with make_env(task, seed=args.seed + LATENTS_SEED_OFFSET, action_repeat=cfg.action_repeat,
                  episode_length=cfg.episode_length) as env:
        rollouts = collect_latents(ckpt.agent, env, args.episodes, frames=args.frames, max_steps=args.max_steps,
                                   seed=args.seed)
    collect_s = time.perf_counter() - start
    rollouts.save(out / "latents.npz")
    proj = project(rollouts, method=args.method, dims=args.dims, seed=args.seed)
    proj.save(out / "projection.npz")
    save_projection_html(proj, rollouts, out / "projection.html")
    save_projection_png(proj, rollouts, out / "projection.png")
    metrics = [{"episode": i, "return": float(r.sum()), **structure_metrics(z)}
               for i, (z, r) in enumerate(zip(rollouts.latents, rollouts.rewards))]
    summary = dict(task=task, episodes=args.episodes, points=rollouts.num_points,
                   imagined_points=int(sum(im.shape[0] * im.shape[1] for im in rollouts.imagined)),
                   collect_seconds=round(collect_s, 2), project_seconds=round(proj.fit_seconds, 2),
                   method=args.method, metrics=metrics, out=str(out))
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    return rollouts, summary


def _latents_of_all_tasks(args, out: Path) -> None:
    """`latents --task all`: a multi-task checkpoint's every task, each on its own and all in one map."""
    from .analysis.task_map import acting_for, save_task_map_png, task_map_figure, task_projection

    if len(args.checkpoint) != 1:
        raise UsageError("--task all takes one multi-task checkpoint")
    ckpt = _load_agent(args.checkpoint[0], args.device, [])
    if not ckpt.agent.tasks:
        raise UsageError(f"{args.checkpoint[0]} is single-task ({ckpt.agent.cfg.task}); --task all needs a multi-task "
                         "checkpoint (`mbdpo-lab pretrain`)")
    rollouts = {}
    for spec in ckpt.agent.tasks:
        with acting_for(ckpt.agent, spec.name):
            rollouts[spec.name] = _latents_of_one(ckpt, spec.name, args, out / spec.name)[0]
    projection, labels = task_projection(rollouts, method=args.method, seed=args.seed)
    task_map_figure(projection, labels).write_html(str(out / "tasks.html"), include_plotlyjs=True)
    save_task_map_png(projection, labels, out / "tasks.png")
    print(json.dumps(dict(tasks=list(rollouts), episodes=args.episodes, html=str(out / "tasks.html"),
                          png=str(out / "tasks.png"), fit_seconds=round(projection.fit_seconds, 2))))


def cmd_latents(args) -> None:
    out = Path(args.out)
    if args.task == "all":
        _latents_of_all_tasks(args, out)
        return
    loaded = {}  # name -> (checkpoint, task): all load before anything is written
    for checkpoint in args.checkpoint:
        ckpt = _load_agent(checkpoint, args.device, [])
        task = _task_of(ckpt.agent, checkpoint, args.task)
        name = Path(checkpoint).parent.name if checkpoint.endswith(".safetensors") else checkpoint
        name = name if name and name not in loaded else f"{name or task}-{len(loaded)}"
        loaded[name] = (ckpt, task)
    if len(loaded) == 1:
        (ckpt, task), = loaded.values()
        print(json.dumps(_latents_of_one(ckpt, task, args, out)[1]))
        return
    from .analysis.contrast import contrast_figure, contrast_panels, save_contrast_png

    rollouts = {name: _latents_of_one(ckpt, task, args, out / name)[0] for name, (ckpt, task) in loaded.items()}
    summaries = {name: str(out / name) for name in rollouts}
    panels = contrast_panels(rollouts, list(rollouts), method=args.method, seed=args.seed)
    contrast_figure(panels).write_html(str(out / "contrast.html"), include_plotlyjs=True)
    save_contrast_png(panels, out / "contrast.png")
    rows = {p.name: dict(kind=p.kind, shown=p.why, out=summaries[p.name],
                         **{f"{k}_{stat}": round(v, 4) for k in ("cyclicity", "goal_directedness")
                            for stat, v in zip(("mean", "std"), p.summary(k))}) for p in panels}
    (out / "contrast.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps(dict(agents=rows, html=str(out / "contrast.html"), png=str(out / "contrast.png"))))


def cmd_export(args) -> None:
    from .pretrained import export_run

    if not (Path(args.run) / "agent.safetensors").exists():
        raise UsageError(f"{args.run} has no agent.safetensors; train it first")
    print(json.dumps(export_run(args.run, args.name, episodes=args.episodes, replace=args.replace,
                                       device_note=args.device_note)))


def cmd_export_generalist(args) -> None:
    from .pretrained import export_generalist

    if not (Path(args.run) / "agent.safetensors").exists():
        raise UsageError(f"{args.run} has no agent.safetensors; pretrain it first (mbdpo-lab pretrain)")
    print(json.dumps(export_generalist(args.run, args.name, replace=args.replace, device_note=args.device_note)))


def cmd_import_checkpoint(args) -> None:
    from .checkpoint import file_sha256, save_checkpoint
    from .envs import make_env
    from .release_checkpoint import import_release_checkpoint

    out = Path(args.output)
    if out.suffix != ".safetensors":
        out = out.with_suffix(".safetensors")
    if out.exists() and not args.replace:
        raise UsageError(f"{out} exists; choose another --out or add --replace")
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name ending in .safetensors")
    with make_env(args.task, seed=0) as env:
        dims = env.obs_dim, env.act_dim
    agent, notes = import_release_checkpoint(args.file, args.fmt, args.task, *dims)
    meta = {"imported_from": Path(args.file).name, "imported_format": args.fmt,
            "imported_sha256": file_sha256(args.file), "notes": notes}
    save_checkpoint(agent, out, meta=meta)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({"out": str(out), "task": args.task, "format": args.fmt, "variant": agent.cfg.variant,
                      "params": agent.wm.num_params(), "eta": agent.cfg.eta,
                      "score_network": agent.wm.score_net is not None}))


def cmd_score_policy(args) -> None:
    import logging

    from .experiments.score_policy import run_score_policy

    if not args.no_progress:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(run_score_policy(args.checkpoint, args.out, args.updates, args.batch_size, args.fit_episodes,
                                      args.episodes, args.seed, args.device, args.score_output)))


def cmd_fidelity(args) -> None:
    from .experiments.fidelity import measure_run, write_rows

    rows = [measure_run(run, episodes=args.episodes, seed=args.seed) for run in args.runs]
    write_rows(args.csv, rows)
    for row in rows:
        print(json.dumps(row))


def cmd_bench(args) -> None:
    from .bench import benchmark

    cfg = _config(args.preset, args.overrides, device=args.device, task=args.task)
    if args.train_envs:
        from .bench import training_speed
        from .envs import resolve_task

        resolve_task(cfg.task)
        for n in args.train_envs:
            print(json.dumps(training_speed(cfg, n, steps=args.train_steps)), flush=True)
        return
    if args.eval:
        from .bench import evaluation_speed
        from .envs import resolve_task

        resolve_task(cfg.task)
        print(json.dumps(evaluation_speed(cfg, episodes=args.eval, length=args.eval_steps)))
        return
    result = benchmark(cfg, obs_dim=args.obs_dim, act_dim=args.act_dim, dtype=args.dtype, repeats=args.repeats)
    print(json.dumps(result))


def cmd_compare_anchor(args) -> None:
    import logging

    from .experiments.anchor import run_compare_anchor

    if not args.no_progress:  # the experiment reports each phase through logging, to stderr
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_compare_anchor(args)


def cmd_anchor_table(args) -> None:
    from .experiments.anchor import markdown_table

    missing = [d for d in args.dirs if not (Path(d) / "anchor_metrics.csv").exists()]
    if missing:
        raise UsageError(f"{missing[0]} holds no anchor_metrics.csv; pass directories written by compare-anchor --out")
    print(markdown_table(args.dirs))


def cmd_book(args) -> None:
    from .widgets.book import build

    build(Path(args.out), Path(args.notebooks) if args.notebooks else None, fast=not args.normal)


def cmd_lessons(args) -> None:
    from .experiments import lessons

    if args.build is not None:
        unknown = [n for n in args.build if n not in lessons.ASSETS]
        if unknown:
            raise UsageError(f"no lesson data named {unknown[0]!r}; choose from {', '.join(lessons.ASSETS)}")
        lessons.build(args.build or None)
    for name, asset in lessons.ASSETS.items():
        problems = lessons.problems(name)
        print(f"{name:12s} {'OK' if not problems else 'NOT USABLE: ' + '; '.join(problems)}  ({asset.what})")


def cmd_sweep(args) -> None:
    from .experiments.sweep import SweepSpec, parse_grid, run_sweep

    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise UsageError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    spec = SweepSpec(tasks=args.tasks, seeds=args.seeds, grid=parse_grid(args.grid), preset=args.preset,
                     steps=args.steps, overrides=args.overrides)

    def report(result, finished, total):
        if result.get("state") == "finished":
            print(f"[{finished}/{total}] {result['name']}: eval return {result['eval_return']:.1f} "
                  f"({result['wall_s']:.0f} s)", flush=True)
        else:
            print(f"{result['name']}: {result.get('state')} ({result.get('error', '')})", flush=True)

    results = run_sweep(spec, args.out, address=args.address, num_cpus=args.num_cpus,
                        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, on_result=report)
    print(json.dumps({"out": args.out, "finished": len(results), "results": str(Path(args.out) / "sweep_results.csv")}))


COMMANDS = {"offline-to-online": cmd_offline_to_online, "scaling": cmd_scaling, "finetune": cmd_finetune, "pretrain": cmd_pretrain, "book": cmd_book, "sweep": cmd_sweep, "tasks": cmd_tasks, "config": cmd_config, "pretrained": cmd_pretrained, "train": cmd_train,
            "eval": cmd_eval, "bench": cmd_bench, "collect": cmd_collect, "convert-tdmpc2": cmd_convert_tdmpc2, "latents": cmd_latents,
            "export": cmd_export, "export-generalist": cmd_export_generalist, "compare-anchor": cmd_compare_anchor, "anchor-table": cmd_anchor_table,
            "import-checkpoint": cmd_import_checkpoint, "score-policy": cmd_score_policy,
            "fidelity": cmd_fidelity, "lessons": cmd_lessons}


def _check_out_dir(path: str) -> None:
    """An output folder must be a folder (or not exist yet) that can be written."""
    import os

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path} is a file; give a folder (it is created when missing)")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--out {path}: {parent} is not writable; choose a folder you can write to")


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors that are the user's to fix print one line (``MBDPO_DEBUG=1``: the traceback)."""
    import os

    args = build_parser().parse_args(argv)
    debug = os.environ.get("MBDPO_DEBUG", "") not in ("", "0")
    try:
        if getattr(args, "out", None):
            _check_out_dir(args.out)
        COMMANDS[args.command](args)
    except (UsageError, ConfigError, UnknownTaskError, CheckpointError) as exc:
        if debug:
            raise
        print(f"mbdpo-lab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ObservationError, TrainingDiverged, LessonFailed) as exc:  # the run's own fault, not the command line's
        print(f"mbdpo-lab {args.command}: error: {exc}", file=sys.stderr)
        return 4
    except RenderingUnavailable as exc:
        print(f"mbdpo-lab {args.command}: error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"mbdpo-lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a vanished folder: the data written so far is intact
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"mbdpo-lab {args.command}: error: {exc.strerror or exc}{where}; fix that and run again "
              "(MBDPO_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
