"""Optimisers and learning-rate schedules: Adam, AdamW, warm-up + cosine, gradient clipping.

Adam (Kingma & Ba 2015) keeps, for every parameter entry, a running mean of its gradient
``m`` (the momentum) and of its squared gradient ``v``, and steps by ``m / sqrt(v)``: each
entry gets its own step size, large where gradients are small and steady, small where they
are large or noisy. With ``t`` the step number (from 1) and ``g`` the gradient::

    m     = beta1 * m + (1 - beta1) * g
    v     = beta2 * v + (1 - beta2) * g**2
    m_hat = m / (1 - beta1**t)            # bias correction: m and v start at 0
    v_hat = v / (1 - beta2**t)
    param = param - lr * m_hat / (sqrt(v_hat) + eps)

Weight decay pulls weights towards 0. :class:`Adam` adds it to the gradient as an L2 penalty
(``g + weight_decay * param``), which Adam then rescales; :class:`AdamW` (Loshchilov & Hutter
2019) *decouples* it: ``param = param - lr * weight_decay * param`` before the Adam step, the
same shrinkage for every entry. Both follow ``torch.optim.Adam`` / ``torch.optim.AdamW``
operation for operation.

Parameters are a plain ``dict[str, np.ndarray]`` (an encoder's ``params``, a head's
``params``) and are updated in place, so the model sees the new values at once.
"""

from __future__ import annotations

import math

import numpy as np

from minitransformer.validation import NonFiniteError, check_finite, check_int, check_number


class Adam:
    """Adam with (coupled, L2) weight decay, as ``torch.optim.Adam``.

    Parameters
    ----------
    params : dict of name -> ndarray
        The arrays to optimise; :meth:`step` changes them in place.
    lr : float
        Learning rate (overridden per step by ``step(grads, lr=...)`` when scheduling).
    betas : (float, float)
        Decay rates of the running means of the gradient and of its square.
    eps : float
        Added to ``sqrt(v_hat)`` so no step divides by zero.
    weight_decay : float
        L2 penalty coefficient (0: none).

    Attributes
    ----------
    t : int
        Number of steps taken.
    m, v : dict of name -> ndarray
        The running means of the gradient and of the squared gradient.
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if not isinstance(params, dict) or not params:
            raise TypeError(f"params must be a non-empty dict of name -> array, got {params!r}")
        for name, param in params.items():
            if not (isinstance(param, np.ndarray) and np.issubdtype(param.dtype, np.floating)):
                raise TypeError(f"params[{name!r}] must be a floating-point ndarray, got {param!r}")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.params = params
        self.lr = check_number("lr", lr, 0.0, open_min=True)
        self.betas = (
            check_number("betas[0]", betas[0], 0.0, 1.0, open_max=True),
            check_number("betas[1]", betas[1], 0.0, 1.0, open_max=True),
        )
        self.eps = check_number("eps", eps, 0.0, open_min=True)
        self.weight_decay = check_number("weight_decay", weight_decay, 0.0)
        self.t = 0
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}

    def step(self, grads: dict[str, np.ndarray], lr: float | None = None) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        grads : dict of name -> ndarray
            A gradient for every parameter, with its shape.
        lr : float, optional
            The learning rate of this step (default: ``self.lr``).
        """
        missing = [name for name in self.params if name not in grads]
        if missing:
            raise ValueError(f"grads has no gradient for parameter(s) {missing}")
        for name, param in self.params.items():  # all checked before any parameter changes
            shape = np.shape(grads[name])
            if shape != param.shape:
                raise ValueError(f"gradient of {name!r} has shape {shape}, expected {param.shape}")
            check_finite(f"the gradient of {name!r}", grads[name])
        lr = self.lr if lr is None else check_number("lr", lr, 0.0)
        beta1, beta2 = self.betas
        self.t += 1
        correction1 = 1 - beta1**self.t
        sqrt_correction2 = math.sqrt(1 - beta2**self.t)
        for name, param in self.params.items():
            g = self._decay(param, grads[name], lr)
            m, v = self.m[name], self.v[name]
            m += (1 - beta1) * (g - m)  # m = beta1 m + (1 - beta1) g
            v *= beta2
            v += (1 - beta2) * g * g  # v = beta2 v + (1 - beta2) g^2
            denom = np.sqrt(v) / sqrt_correction2 + self.eps  # sqrt(v_hat) + eps
            param -= (lr / correction1) * m / denom  # lr * m_hat / (sqrt(v_hat) + eps)

    def _decay(self, param: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        """Adam's weight decay is an L2 penalty: it adds ``weight_decay * param`` to ``g``."""
        return g + self.weight_decay * param if self.weight_decay else g


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``.

    Same parameters as :class:`Adam`; ``weight_decay`` defaults to 0.01 as in PyTorch, and
    shrinks every parameter by ``lr * weight_decay`` of itself before the Adam step.
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, param: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
        """Shrink the parameter itself (in place); the gradient is left alone."""
        if self.weight_decay:
            param *= 1 - lr * self.weight_decay
        return g


def warmup_cosine_lr(
    step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0, min_lr: float = 0.0
) -> float:
    """Learning rate of a linear warm-up followed by a cosine decay.

    For the first ``warmup_steps`` steps the rate climbs linearly to ``peak_lr``
    (``peak_lr * (step + 1) / warmup_steps``), so the first Adam steps, taken while ``v`` is
    still a poor estimate, stay small; then it follows half a cosine from ``peak_lr`` down to
    ``min_lr`` at the last step (Loshchilov & Hutter 2017, without restarts)::

        progress = (step - warmup_steps) / (total_steps - warmup_steps - 1)   # 0 -> 1
        lr = min_lr + (peak_lr - min_lr) * (1 + cos(pi * progress)) / 2

    Parameters
    ----------
    step : int
        The step, from 0 to ``total_steps - 1``.
    total_steps, warmup_steps : int
    peak_lr, min_lr : float

    Returns
    -------
    float
    """
    total_steps = check_int("total_steps", total_steps, 1)
    warmup_steps = check_int("warmup_steps", warmup_steps, 0, total_steps)
    step = check_int("step", step, 0, total_steps - 1)
    peak_lr = check_number("peak_lr", peak_lr, 0.0, open_min=True)
    min_lr = check_number("min_lr", min_lr, 0.0, peak_lr)
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps - 1)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """The L2 norm of all gradients together, as if concatenated into one vector.

    Summed in float64, so it overflows only for gradients beyond about 1e154: inf or NaN means
    a gradient holds inf or NaN.
    """
    return math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))


def clip_grad_norm(
    grads: dict[str, np.ndarray], max_norm: float
) -> tuple[dict[str, np.ndarray], float]:
    """Scale all gradients together so that their global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with ``n`` the global norm, every gradient is
    multiplied by ``min(1, max_norm / (n + 1e-6))``. Scaling all of them by the same factor
    keeps the direction of the step and only shortens it, which tames the rare huge gradient.

    Parameters
    ----------
    grads : dict of name -> ndarray
    max_norm : float

    Returns
    -------
    clipped : dict of name -> ndarray
        New arrays (the input is not changed).
    total_norm : float
        The global norm *before* clipping (worth logging: spikes show instability).
    """
    max_norm = check_number("max_norm", max_norm, 0.0, open_min=True)
    total_norm = global_norm(grads)
    if not math.isfinite(total_norm):  # scaling by max_norm / inf = 0 would turn inf into NaN
        for name, g in grads.items():
            check_finite(f"the gradient of {name!r}", g)
        raise NonFiniteError(f"the global gradient norm overflowed float64 ({total_norm})")
    scale = min(1.0, max_norm / (total_norm + 1e-6))
    return {name: g * g.dtype.type(scale) for name, g in grads.items()}, total_norm
