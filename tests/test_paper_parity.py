"""Step-for-step parity with the paper's reference code (N. Ahmad, arXiv 2407.10780).

The reference below is an independent torch implementation of what the paper's code
(github nasiryahm/CorrelationsRuinGD, crgd/decor.py, fa.py, np.py, models.py, run.py)
does, written from its semantics:

- Decorrelator: in training, the batch mean is part of the autograd graph
  (``input - mean(input)``), the running mean moves with momentum 0.1, the output is
  ``z = (x - mean) @ R`` (so the paper's R is analogdecor's R transposed), and right
  after the output, without gradient: k = int(0.1 len(x)) + 1 first samples,
  C = Z^T Z / k, gain g = mean_n ||x_n|| / (||z_n|| + 1e-8) (x un-centred),
  R <- g R, R <- R - lr C R.
- Layers: torch.nn.Linear's default initialisation; FA's backward matrix from
  ``kaiming_uniform_``; FA's autograd function uses grad_output @ B for the input.
- NP: the model runs ``cat([x, x])``; every layer adds zeros to the first half and
  sigma N(0, 1) to the second, and sets weight.grad = sum_n s_n (-noise_n / sigma^2) z_n^T
  with s_n = (L_clean,n - L_noisy,n) / B, bias.grad the same summed over n.
- torch.optim.Adam(betas=(0.9, 0.9999), eps=1e-8) over weights and biases; cross-entropy.

analogdecor runs its float backend with the paper's settings (init "torch", Adam,
decorrelation ordering "local", gain "norm", mean_gradient on, NP passes "stacked")
from the same initial weights, batches and NP noise; after every step the losses, every
W, b and R must agree to float32 tolerance. The paper's DenseNet leaves its last hidden
layer without an activation (``if (i + 1) < num_hidden_layers``); that is a property of
one experiment's architecture, not of the rules, and both networks here put leaky_relu
after every hidden layer.
"""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.learning import Adam, apply_updates, compute_signals, decorrelation_step, init_rule_state
from analogdecor.networks import MLP

torch = pytest.importorskip("torch")

WIDTHS = (20, 32, 24, 16, 5)  # 3 hidden layers
BATCH = 64
STEPS = 20
LR = 1e-3
DECOR_LR = 1e-2  # large enough that R moves visibly in 20 steps (the paper's 1e-5 would not)
SIGMA = 1e-3


# ---------------------------------------------------------------- the reference (paper's code semantics)
class RefDecorrelator:
    def __init__(self, d: int, lr: float, momentum: float = 0.1, perc: float = 0.1) -> None:
        self.R = torch.eye(d, dtype=torch.float32)  # z = x_c @ R
        self.running_mean = torch.zeros(d)
        self.lr, self.momentum, self.perc = lr, momentum, perc

    def __call__(self, x):
        mean = torch.mean(x, dim=0)  # in the graph: errors pass through it
        self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean.detach()
        z = (x - mean[None, :]) @ self.R
        with torch.no_grad():
            k = int(self.perc * len(x)) + 1
            xs, zs = x[:k], z[:k]
            corr = (zs.T @ zs) / len(zs)
            g = torch.mean(torch.sqrt(torch.sum(xs**2, dim=1)) / (torch.sqrt(torch.sum(zs**2, dim=1)) + 1e-8))
            R = self.R * g
            self.R = R - self.lr * (corr @ R)
        return z


class FAFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, B, b):
        ctx.save_for_backward(x, B)
        return x @ W.T + b

    @staticmethod
    def backward(ctx, g):
        x, B = ctx.saved_tensors
        return g @ B, g.T @ x, None, g.sum(0)


class RefLayer:
    def __init__(self, W: np.ndarray, b: np.ndarray, B: np.ndarray | None, decor: RefDecorrelator | None):
        self.W = torch.nn.Parameter(torch.tensor(W))
        self.b = torch.nn.Parameter(torch.tensor(b))
        self.B = None if B is None else torch.tensor(B)
        self.decor = decor

    def __call__(self, x, rule: str, noise=None):
        if self.decor is not None:
            x = self.decor(x)
        if rule == "fa":
            return FAFn.apply(x, self.W, self.B, self.b)
        if rule == "bp":
            return x @ self.W.T + self.b
        # np: clean half plus noisy half; remember what update_grads needs
        half = len(x) // 2
        out = x @ self.W.T + self.b
        full = torch.cat([torch.zeros_like(noise), noise])
        self.clean_input, self.output_diff = x[:half], -full[half:]
        return out + full


class RefNet:
    def __init__(self, net: MLP, feedback, decor_lr: float | None, lr: float, sigma: float) -> None:
        self.layers = []
        for i, layer in enumerate(net.layers):
            decor = RefDecorrelator(layer.in_size, decor_lr) if decor_lr is not None else None
            B = feedback[i] if feedback else None
            self.layers.append(RefLayer(layer.tile.read_weights(), layer.bias.copy(), B, decor))
        params = [p for lyr in self.layers for p in (lyr.W, lyr.b)]
        self.opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.9999), eps=1e-8)
        self.sigma = sigma

    def forward(self, x, rule, noises=None):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, rule, None if noises is None else noises[i])
            if i < len(self.layers) - 1:
                h = torch.nn.functional.leaky_relu(h, 0.01)
        return h

    def train_step(self, x: np.ndarray, y: np.ndarray, rule: str, noises=None) -> float:
        self.opt.zero_grad()
        xt, yt = torch.tensor(x), torch.tensor(y)
        ce = torch.nn.CrossEntropyLoss(reduction="none")
        if rule == "np":
            with torch.no_grad():
                out = self.forward(torch.cat([xt, xt.clone()]), rule, [torch.tensor(n) for n in noises])
                clean, noisy = ce(out[: len(xt)], yt), ce(out[len(xt) :], yt)
                s = (clean - noisy) / len(xt)
                for layer in self.layers:
                    scaled = s[:, None] * layer.output_diff / self.sigma**2
                    layer.W.grad = torch.einsum("ni,nj->ij", scaled, layer.clean_input)
                    layer.b.grad = scaled.sum(0)
                loss = clean.mean()
        else:
            loss = ce(self.forward(xt, rule), yt).mean()
            loss.backward()
        self.opt.step()
        return float(loss.detach())


# ---------------------------------------------------------------- the comparison
def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(WIDTHS[0], WIDTHS[0])) / np.sqrt(WIDTHS[0]) + 0.6 * np.eye(WIDTHS[0])
    x = (rng.normal(size=(STEPS * BATCH, WIDTHS[0])) @ mix + 0.5).astype(np.float32)  # correlated, not centred
    teacher = rng.normal(size=(WIDTHS[0], WIDTHS[-1]))
    y = np.argmax(x @ teacher + rng.normal(size=(len(x), WIDTHS[-1])), axis=1)
    return x, y


def run_both(rule: str, decor: bool, seed: int = 0, passes: str = "stacked", init: str = "torch", **decor_options):
    """Train analogdecor and the reference side by side; yield per-step (ours, ref) snapshots."""
    dcfg = DecorrelationConfig(enabled=True, lr=DECOR_LR, **decor_options) if decor else None
    net = MLP.build(list(WIDTHS), decorrelation=dcfg, init=init, seed=seed)
    state = init_rule_state(rule, net, seed=seed, init=init)
    ref = RefNet(net, state["feedback"], DECOR_LR if decor else None, LR, SIGMA)
    opt = Adam(LR, 0.9, 0.9999, 1e-8)
    ours_rng, ref_rng = np.random.default_rng(100 + seed), np.random.default_rng(100 + seed)
    x, y = _data(seed)
    for step in range(STEPS):
        xb, yb = x[step * BATCH : (step + 1) * BATCH], y[step * BATCH : (step + 1) * BATCH]
        res = compute_signals(rule, net, xb, yb, state, sigma=SIGMA, rng=ours_rng, passes=passes)
        apply_updates(net, res, opt, LR)
        decorrelation_step(net, res)
        noises = None
        if rule == "np":  # the same draws, in the same order, as analogdecor's noise
            noises = [(SIGMA * ref_rng.standard_normal((BATCH, n))).astype(np.float32) for n in WIDTHS[1:]]
        ref_loss = ref.train_step(xb, yb, rule, noises)
        yield step, net, ref, float(np.mean(res.loss)), ref_loss


def max_differences(rule: str, decor: bool, **options) -> dict[str, float]:
    worst = {"loss": 0.0, "W": 0.0, "b": 0.0, "R": 0.0, "mu": 0.0}
    for _, net, ref, loss, ref_loss in run_both(rule, decor, **options):
        worst["loss"] = max(worst["loss"], abs(loss - ref_loss))
        for layer, rl in zip(net.layers, ref.layers, strict=True):
            worst["W"] = max(worst["W"], float(np.abs(layer.tile.read_weights() - rl.W.detach().numpy()).max()))
            worst["b"] = max(worst["b"], float(np.abs(layer.bias - rl.b.detach().numpy()).max()))
            if decor:
                R_ref = rl.decor.R.numpy().T.astype(np.float64)  # paper's z = x R: analogdecor's R^T
                worst["R"] = max(worst["R"], float(np.abs(layer.decor.matrix() - R_ref).max()))
                worst["mu"] = max(worst["mu"], float(np.abs(layer.decor.mu - rl.decor.running_mean.numpy()).max()))
    return worst


# Tolerances: float32 rounding, amplified where Adam divides a near-zero gradient by its own
# size (biases behind the mean's derivative; NP's loss difference, which the paper's code forms
# in float32). Measured worst cases: losses 3.4e-7, W 7.6e-6 (NP), b 2.3e-6, R 4.8e-6, mu 6.1e-7.
# Every non-paper setting tried moves some quantity by more than 1e-3 (see the next test).
TOL = {"loss": 1e-6, "W": 2e-5, "b": 2e-5, "R": 2e-5, "mu": 2e-5}


@pytest.mark.parametrize("decor", [False, True], ids=["plain", "decorrelated"])
@pytest.mark.parametrize("rule", ["bp", "fa", "np"])
def test_twenty_steps_agree_with_the_paper_code(rule, decor):
    worst = max_differences(rule, decor)
    bad = {k: v for k, v in worst.items() if not v <= TOL[k]}
    assert not bad, f"{rule} decorrelation={decor}: worst differences {worst}"


@pytest.mark.parametrize(
    ("rule", "options"),
    [("bp", {"mean_gradient": False}), ("fa", {"mean_gradient": False}), ("np", {"passes": "separate"}),
     ("bp", {"ordering": "global"}), ("bp", {"gain": "rms"})],
    ids=["bp-mu-constant", "fa-mu-constant", "np-separate-passes", "global-ordering", "rms-gain"],
)
def test_each_non_paper_setting_is_detected(rule, options):
    """The comparison is sharp enough to see each option that departs from the paper's code."""
    worst = max_differences(rule, True, **options)
    assert max(worst["W"], worst["R"]) > 1e-3
