"""
Collision cross-entropy versus Shannon's cross-entropy
======================================================

Figure 1 of Zhang and Boykov, "Collision Cross-entropy and EM Algorithm for
Self-labeled Classification". The collision cross-entropy

    H₂(y, σ) = −ln Σ_k y_k σ_k,

the negative log-probability that a sample of y and a sample of σ agree
(:func:`skentropy.losses.collision_cross_entropy`), is the training loss of
:class:`skentropy.CollisionCEClustering`. With two clusters, predictions
σ = (x, 1 − x) are points x ∈ [0, 1]; the curves show each loss for three
fixed pseudo-labels y.

* Shannon's cross-entropy H(y, σ) (dashed, :func:`skentropy.losses.cross_entropy`)
  goes to infinity at both end points for any non-one-hot y, and its minimum
  is at σ = y: it trains the model to copy the uncertainty of y.
* H₂ is bounded (by −ln min_k y_k) for every non-one-hot y, which makes it
  robust to wrong pseudo-labels, and it flattens as y gets uncertain: for
  y = (0.5, 0.5) it is constant, so an uncertain label gives no gradient.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from skentropy import losses

x = np.linspace(1e-4, 1 - 1e-4, 500)
log_sigma = torch.log(torch.tensor(np.c_[x, 1 - x], dtype=torch.float64))

pseudo_labels = {
    "y₁ = (0.9, 0.1)": ([0.9, 0.1], "tab:red"),
    "y₂ = (0.7, 0.3)": ([0.7, 0.3], "tab:green"),
    "y₃ = (0.5, 0.5)": ([0.5, 0.5], "tab:blue"),
}
collision = {}
shannon = {}
for name, (y, _) in pseudo_labels.items():
    y = torch.tensor([y], dtype=torch.float64)
    collision[name] = np.array(
        [losses.collision_cross_entropy(row[None, :], y).item() for row in log_sigma]
    )
    shannon[name] = np.array(
        [losses.cross_entropy(y, row[None, :]).item() for row in log_sigma]
    )

# %%
# Plot
# ----
fig, ax = plt.subplots(figsize=(6, 4.2))
for name, (_, color) in pseudo_labels.items():
    ax.plot(x, collision[name], color=color, linewidth=2, label=f"H₂(y, σ), {name}")
    ax.plot(x, shannon[name], "--", color=color, linewidth=1, label=f"H(y, σ), {name}")
ax.set(xlabel="σ = (x, 1 − x)", ylabel="loss", ylim=(0, 3))
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# For the confident label y₁ both losses behave alike near the optimum x = 1
# (H₂) or x = 0.9 (H). The dashed curves all blow up at both ends; the solid
# ones stay below −ln 0.1 ≈ 2.3, and the solid blue one is flat at ln 2.
