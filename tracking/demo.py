"""Demo data for ``manage.py up --demo``: team ``demo``, project ``demo/mnist``, six runs.

The runs look like a small MNIST sweep: four finished, one that diverged to NaN
and failed, one killed by hand. Every run has ended: nothing keeps a demo run
alive, so one left ``running`` would turn ``crashed`` ten minutes later and page
whoever had just created a ``run_failed`` rule about it. Every write goes
through the services and ``metrics_ingest``, so the demo exercises the same
paths as a real client. The curves are seeded, so two demos look alike.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from tracking.ingest import Point, metrics_ingest
from tracking.models import Project, Run, RunStatus, Team
from tracking.services import project_create, run_create, run_update, team_create

DEMO_TEAM = "demo"
DEMO_PROJECT = "mnist"
INITIAL_LOSS = math.log(10)  # cross-entropy of a uniform guess over ten digits
CHANCE_ACC = 0.1
VAL_EVERY = 100
LR_EVERY = 10
FAILED_TRACEBACK = """\
Loss became NaN at step 1179: the learning rate is too high for AdamW without clipping.

Traceback (most recent call last):
  File "train.py", line 148, in <module>
    main()
  File "train.py", line 121, in main
    raise FloatingPointError(f"loss is {loss.item()} at step {step}")
FloatingPointError: loss is nan at step 1179
"""


@dataclass(frozen=True)
class DemoRun:
    name: str
    group: str
    status: str
    steps: int  # steps logged so far
    optimizer: str
    lr: float
    batch_size: int
    model: str
    floor: float  # where train/loss settles
    best_acc: float
    tags: tuple[str, ...]
    host: str
    branch: str
    hours_ago: float  # when the last point was logged
    seconds_per_step: float = 0.3
    total_steps: int = 3000  # the horizon of the learning-rate schedule
    diverges_at: int | None = None
    exit_code: int | None = None
    notes: str = ""


# fmt: off
DEMO_RUNS: tuple[DemoRun, ...] = (
    DemoRun(
        name="cnn-sgd-baseline", group="baseline", status=RunStatus.FINISHED, steps=3000,
        optimizer="sgd", lr=0.1, batch_size=128, model="cnn", floor=0.06, best_acc=0.984,
        tags=("baseline", "cnn"), host="gpu-box-1", branch="main", hours_ago=26,
        exit_code=0, notes="Plain SGD with momentum 0.9: the reference for the sweep.",
    ),
    DemoRun(
        name="cnn-adamw-lr3e-4", group="adamw-sweep", status=RunStatus.FINISHED, steps=3000,
        optimizer="adamw", lr=3e-4, batch_size=128, model="cnn", floor=0.025, best_acc=0.991,
        tags=("cnn", "sweep", "best"), host="gpu-box-1", branch="exp/adamw", hours_ago=20,
        exit_code=0,
    ),
    DemoRun(
        name="cnn-adamw-lr1e-2", group="adamw-sweep", status=RunStatus.FAILED, steps=1180,
        optimizer="adamw", lr=1e-2, batch_size=128, model="cnn", floor=0.05, best_acc=0.97,
        tags=("cnn", "sweep"), host="gpu-box-2", branch="exp/adamw", hours_ago=19,
        diverges_at=900, exit_code=1, notes=FAILED_TRACEBACK,
    ),
    DemoRun(
        name="resnet18-sgd", group="resnet", status=RunStatus.KILLED, steps=1400,
        optimizer="sgd", lr=0.05, batch_size=256, model="resnet18", floor=0.03, best_acc=0.989,
        tags=("resnet",), host="gpu-box-2", branch="main", hours_ago=5, seconds_per_step=0.6,
        exit_code=137, notes="Stopped by hand: superseded by resnet18-adamw.",
    ),
    DemoRun(
        name="resnet18-adamw", group="resnet", status=RunStatus.FINISHED, steps=3000,
        optimizer="adamw", lr=1e-3, batch_size=256, model="resnet18", floor=0.015,
        best_acc=0.994, tags=("resnet",), host="gpu-box-2", branch="main", hours_ago=1,
        seconds_per_step=0.6, exit_code=0,
    ),
    DemoRun(
        name="vit-tiny-adamw", group="vit", status=RunStatus.FINISHED, steps=3000,
        optimizer="adamw", lr=5e-4, batch_size=512, model="vit-tiny", floor=0.04,
        best_acc=0.985, tags=("vit", "sweep"), host="gpu-box-1", branch="exp/vit", hours_ago=2,
        seconds_per_step=1.1, exit_code=0,
        notes="ViT from scratch trails the CNNs on MNIST: too little data for attention.",
    ),
)
# fmt: on


def demo_exists() -> bool:
    return Team.objects.filter(slug=DEMO_TEAM).exists()


@transaction.atomic
def demo_seed(*, owner: User) -> Team:
    """Create the demo team (``owner`` owns it), its project and runs.

    Idempotent: when team ``demo`` exists it is returned untouched.
    """
    team = Team.objects.filter(slug=DEMO_TEAM).first()
    if team is not None:
        return team
    team = team_create(slug=DEMO_TEAM, owner=owner, name="Demo")
    project = project_create(
        user=owner,
        team_slug=DEMO_TEAM,
        slug=DEMO_PROJECT,
        description="Handwritten digits: a small sweep of CNNs, ResNets and a ViT (demo data:"
        " every run has ended, nothing here is live).",
    )
    now = timezone.now().timestamp()
    for spec in DEMO_RUNS:
        demo_run_seed(spec, project=project, owner=owner, now=now)
    return team


def demo_run_seed(spec: DemoRun, *, project: Project, owner: User, now: float) -> Run:
    run = run_create(user=owner, project=project, **_run_fields(spec))
    end = now - spec.hours_ago * 3600
    metrics_ingest(run=run, points=demo_points(spec, end=end))
    run_update(run=run, data=_final_fields(spec, run))
    _backdate(run, start=end - spec.steps * spec.seconds_per_step, end=end)
    return run


def _backdate(run: Run, *, start: float, end: float) -> None:
    """Demo only: give the run the timeline its points have (it 'ran' in the past)."""
    ended = datetime.fromtimestamp(end, tz=UTC)
    Run.objects.filter(pk=run.pk).update(
        created_at=datetime.fromtimestamp(start, tz=UTC), last_seen_at=ended, ended_at=ended
    )


def _run_fields(spec: DemoRun) -> dict[str, Any]:
    commit = hashlib.sha1(f"{spec.branch}/{spec.group}".encode(), usedforsecurity=False)
    return {
        "name": spec.name,
        "group": spec.group,
        "tags": list(spec.tags),
        "host": spec.host,
        "command": f"python train.py --model {spec.model} --optimizer {spec.optimizer}"
        f" --lr {spec.lr} --batch-size {spec.batch_size}",
        "git": {"commit": commit.hexdigest(), "branch": spec.branch, "dirty": False},
        "config": {
            "dataset": "mnist",
            "model": spec.model,
            "optimizer": spec.optimizer,
            "lr": spec.lr,
            "batch_size": spec.batch_size,
            "epochs": round(spec.total_steps * spec.batch_size / 60_000),
            "weight_decay": 0.01 if spec.optimizer == "adamw" else 5e-4,
            "warmup_steps": _warmup(spec),
        },
    }


def _final_fields(spec: DemoRun, run: Run) -> dict[str, Any]:
    data: dict[str, Any] = {"status": spec.status, "exit_code": spec.exit_code}
    if spec.notes:
        data["notes"] = spec.notes
    if spec.status == RunStatus.FAILED:
        trace = FAILED_TRACEBACK[FAILED_TRACEBACK.index("Traceback") :]
        data.update(error=trace.strip().splitlines()[-1], traceback=trace)
    if spec.status == RunStatus.FINISHED:
        series = {s.key: s for s in run.metric_series.all()}
        data["summary"] = {
            "train/loss": series["train/loss"].last_value,
            "val/loss": series["val/loss"].last_value,
            "val/acc": series["val/acc"].last_value,
            "best/val/acc": series["val/acc"].max_value,
        }
    return data


# --- Curves ------------------------------------------------------------------------


def demo_points(spec: DemoRun, *, end: float) -> list[Point]:
    """train/loss every step, lr every 10 steps, val/loss and val/acc every 100."""
    rng = random.Random(spec.name)  # noqa: S311 - demo noise, not cryptography
    start = end - spec.steps * spec.seconds_per_step
    points: list[Point] = []
    for step in range(spec.steps):
        stamp = start + step * spec.seconds_per_step
        points.append(Point("train/loss", step, _train_loss(spec, step, rng), stamp))
        if step % LR_EVERY == 0:
            points.append(Point("lr", step, _lr(spec, step), stamp))
        if step % VAL_EVERY == VAL_EVERY - 1:
            points.extend(_validation(spec, step, rng, stamp))
    return points


def _warmup(spec: DemoRun) -> int:
    return spec.total_steps // 30


def _lr(spec: DemoRun, step: int) -> float:
    """Linear warm-up, then cosine decay to zero at ``total_steps``."""
    warmup = _warmup(spec)
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    progress = (step - warmup) / (spec.total_steps - warmup)
    return spec.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _clean_loss(spec: DemoRun, step: int) -> float:
    tau = spec.total_steps / 8
    loss = spec.floor + (INITIAL_LOSS - spec.floor) * math.exp(-step / tau)
    if spec.diverges_at is not None and step > spec.diverges_at:
        loss *= math.exp((step - spec.diverges_at) / 40)
    return loss


def _train_loss(spec: DemoRun, step: int, rng: random.Random) -> float | None:
    if spec.diverges_at is not None and step == spec.steps - 1:
        return None  # NaN: what made the run fail
    return _clean_loss(spec, step) * math.exp(rng.gauss(0, 0.12))


def _validation(spec: DemoRun, step: int, rng: random.Random, stamp: float) -> list[Point]:
    clean = _clean_loss(spec, step)
    overfit = 0.03 * (step / spec.total_steps) ** 2
    loss = clean * 1.1 + overfit + abs(rng.gauss(0, 0.005))
    learned = 1 - (clean - spec.floor) / (INITIAL_LOSS - spec.floor)
    acc = CHANCE_ACC + (spec.best_acc - CHANCE_ACC) * learned + rng.gauss(0, 0.001)
    acc = min(max(acc, 0.02), 0.999)
    return [Point("val/loss", step, loss, stamp), Point("val/acc", step, acc, stamp)]
