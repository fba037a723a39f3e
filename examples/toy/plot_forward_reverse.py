"""
Forward and reverse KL divergence and cross-entropy
===================================================

Figure 2 of Zhang et al., "Discriminative Entropy Clustering and its Relation
to K-means and SVM", drawn with the loss functions of
:mod:`skentropy.losses`. With two clusters a distribution is a point
(x, 1 − x), so every term is a curve over x ∈ [0, 1].

(a) **Fairness.** Prior work measures the balance of the mean prediction σ̄
with the reverse KL divergence KL(σ̄‖u) (:func:`skentropy.losses.fairness`),
which stays finite at the end points: it tolerates putting every point in one
cluster. The forward divergence KL(u‖σ̄)
(:func:`skentropy.losses.strong_fairness`) goes to infinity there; it is the
*strong fairness* of the self-labeling loss of :class:`skentropy.EntropyClustering`.

(b) **Cross-entropy with pseudo-labels.** The standard forward cross-entropy
H(y, σ) (:func:`skentropy.losses.cross_entropy`) is minimized at σ = y: it
trains the model to copy the uncertainty of a soft pseudo-label. The reverse
cross-entropy H(σ, y) (:func:`skentropy.losses.reverse_cross_entropy`) is
bounded (by −ln min_k y_k) and nearly flat for an uncertain y, so an uncertain
pseudo-label hardly trains the model, and a wrong one cannot cost more than a
bounded amount.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from skentropy import losses

x = np.linspace(1e-4, 1 - 1e-4, 500)
# One row per x: the distribution (x, 1 - x), as log-probabilities.
log_sigma = torch.log(torch.tensor(np.c_[x, 1 - x], dtype=torch.float64))


def per_point(term, *args):
    """Evaluate a loss term of one row (a distribution) for every x."""
    return np.array([term(row[None, :], *args).item() for row in log_sigma])


priors = {"u₁ = (0.9, 0.1)": [0.9, 0.1], "u₂ = (0.5, 0.5)": [0.5, 0.5]}
colors = ["tab:blue", "tab:red"]

# %%
# (a) forward and reverse KL divergence
# -------------------------------------
# With a single row, the mean prediction σ̄ is that row.
forward_kl = {}
reverse_kl = {}
for name, u in priors.items():
    u = torch.tensor(u, dtype=torch.float64)
    forward_kl[name] = np.array(
        [losses.strong_fairness(row.exp()[None, :], u).item() for row in log_sigma]
    )
    reverse_kl[name] = per_point(losses.fairness, u)

# %%
# (b) reverse and forward cross-entropy
# -------------------------------------
labels = {"y₁ = (0.9, 0.1)": [0.9, 0.1], "y₂ = (0.5, 0.5)": [0.5, 0.5]}
reverse_ce = {}
forward_ce = {}
for name, y in labels.items():
    y = torch.tensor([y], dtype=torch.float64)
    reverse_ce[name] = np.array(
        [losses.reverse_cross_entropy(row[None, :], y).item() for row in log_sigma]
    )
    forward_ce[name] = np.array(
        [losses.cross_entropy(y, row[None, :]).item() for row in log_sigma]
    )

# %%
# Plot
# ----
fig, (ax_kl, ax_ce) = plt.subplots(1, 2, figsize=(11, 4.2))
for name, color in zip(priors, colors, strict=True):
    ax_kl.plot(x, forward_kl[name], color=color, label=f"KL(u‖σ̄), {name}")
    ax_kl.plot(x, reverse_kl[name], "--", color=color, label=f"KL(σ̄‖u), {name}")
ax_kl.set(xlabel="σ̄ = (x, 1 − x)", ylim=(0, 3), title="(a) fairness")
ax_kl.legend(fontsize=8)
for name, color in zip(labels, colors, strict=True):
    ax_ce.plot(x, reverse_ce[name], color=color, label=f"H(σ, y), {name}")
    ax_ce.plot(x, forward_ce[name], "--", color=color, label=f"H(y, σ), {name}")
ax_ce.set(xlabel="σ = (x, 1 − x)", ylim=(0, 3), title="(b) cross-entropy")
ax_ce.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The dashed reverse KL curves reach the end points x = 0 and x = 1 (all
# points in one cluster) at a finite cost, ln 2 for the uniform prior; the
# solid forward KL curves shoot up. In (b) the dashed forward cross-entropy
# has its minimum at σ = y (x = 0.9 and x = 0.5) and grows without bound at
# the end points; the solid reverse cross-entropy is bounded, and for the
# uncertain label y₂ it is constant (ln 2): it does not train σ at all.
