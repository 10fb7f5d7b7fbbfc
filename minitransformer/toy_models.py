"""Trained toy models that ship with the package: no training and no download needed.

Each file ``minitransformer/checkpoints/{task}_seed{seed}.npz`` holds an encoder and its
classification head trained on a toy task of :mod:`minitransformer.tasks` by::

    minitransformer train TASK --seed SEED

(:func:`minitransformer.training.train_task` with the task's settings). Retraining gives the
same weights bit for bit with the same code and the same NumPy/BLAS build (training uses one
BLAS thread); elsewhere float32 sums may round differently along the way, and retraining
reaches the same held-out accuracy, with a pattern score within a few hundredths.

>>> model, classifier, task = load_toy_model("reverse")
>>> batch = task.generate(4, seed=0)
>>> logits = classifier(model(batch.token_ids, batch.mask))
>>> bool((logits.argmax(-1) == batch.targets).all())
True
"""

from __future__ import annotations

from pathlib import Path

from minitransformer.checkpoint import load_checkpoint
from minitransformer.encoder import Encoder
from minitransformer.heads import Classifier
from minitransformer.tasks import Task, get_task

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def toy_model_path(task: str, seed: int = 0) -> Path:
    """Where the shipped checkpoint of ``task`` trained with ``seed`` lives."""
    return CHECKPOINT_DIR / f"{task}_seed{seed}.npz"


def available_toy_models() -> list[tuple[str, int]]:
    """The (task, seed) pairs that have a shipped checkpoint."""
    pairs = []
    for path in sorted(CHECKPOINT_DIR.glob("*_seed*.npz")):
        task, seed = path.stem.rsplit("_seed", 1)
        pairs.append((task, int(seed)))
    return pairs


def load_toy_model(task: str, seed: int = 0) -> tuple[Encoder, Classifier, Task]:
    """The shipped model trained on ``task``.

    Parameters
    ----------
    task : str
        A name from :data:`minitransformer.tasks.TASKS`.
    seed : int
        The training seed; 0 for every task, and also 4 for ``"twin"`` (whose seed 0 model
        *avoids* the twin and seed 4 model *attends* to it; see
        :data:`~minitransformer.tasks.TWIN_SEEDS`).

    Returns
    -------
    model : Encoder
    classifier : Classifier
    task : Task
    """
    task_obj = get_task(task)
    path = toy_model_path(task, seed)
    if not path.is_file():
        raise ValueError(
            f"no shipped model for task {task!r} with seed {seed}; "
            f"available (task, seed): {available_toy_models()}"
        )
    checkpoint = load_checkpoint(path)
    if checkpoint.classifier is None:
        raise ValueError(f"{path} holds no classifier head")
    return checkpoint.model, checkpoint.classifier, task_obj
