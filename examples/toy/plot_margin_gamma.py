"""
The margin grows with γ
=======================

Figure 4 of the supplement of Zhang et al., "Discriminative Entropy Clustering
and its Relation to K-means and SVM". Decisiveness alone, mean H(σ), does not
imply a large margin: a linear softmax model σ(vᵀx + b) can make its
predictions as confident as it likes on every data point by growing the norm
of v, which squeezes the uncertain band around the boundary between the
points. The term γ‖v‖² (the bias b excluded) penalizes that norm: like the
norm of an SVM, ‖v‖ is the reciprocal of the margin, so a larger γ gives a
wider soft margin.

For two clusters, σ depends on x only through the logit difference
(v₁ − v₂)ᵀx + (b₁ − b₂); the width of the band where the prediction is
uncertain is proportional to 1 / ‖v₁ − v₂‖, the margin printed in each title.
Colours fade to white with the confidence of the prediction (σ-weighted
transparency, as in the paper).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

from skentropy import MaxMarginEntropyClustering
from skentropy.plotting import plot_decision_regions

X, y = make_blobs(
    n_samples=200, centers=[[-2, -1], [2, 1]], cluster_std=0.7, random_state=0
)

# %%
# Fit one model per γ
# -------------------
# The loss is mean H(σ) + λ KL(σ̄‖u) + γ‖v‖² (supplement eq. (a)); only γ
# changes between the panels. γ is in units of the data (the margin term acts
# on the weights on X centered and scaled to a root-mean-square norm of 10,
# here from s ≈ 2.4; see :ref:`margin`), while the margin in each title is
# 1/‖v₁ − v₂‖ of ``coef_``, in the units of X.
gammas = [0.0, 0.2, 2.0, 5.0]
models = {}
margins = {}
for gamma in gammas:
    model = MaxMarginEntropyClustering(
        n_clusters=2, gamma=gamma, lr=0.05, max_iter=300, random_state=0
    ).fit(X)
    models[gamma] = model
    margins[gamma] = 1.0 / np.linalg.norm(model.coef_[0] - model.coef_[1])
    print(f"gamma = {gamma:<5} margin 1/||v1 - v2|| = {margins[gamma]:.3f}")

# %%
# Plot the soft decision regions
# ------------------------------
fig, axes = plt.subplots(1, len(gammas), figsize=(13, 3.6), sharey=True)
for ax, gamma in zip(axes, gammas, strict=True):
    model = models[gamma]
    plot_decision_regions(model, X, ax=ax)
    ax.scatter(*X.T, c="k", s=4)
    ax.set_title(f"γ = {gamma}, margin {margins[gamma]:.2f}")
fig.tight_layout()
plt.show()

# %%
# All four models split the data the same way, but with γ = 0 the band of
# uncertain predictions is a thin line squeezed between the two clusters: the
# model is decisive on every point and says nothing about the gap. As γ grows,
# the band widens to fill the gap between the clusters, the "soft margin" of
# the paper. Too large a γ makes the predictions uncertain on the data points
# themselves. In practice choose γ by cross-validation with a clustering score
# (see :ref:`sphx_glr_auto_examples_usage_plot_grid_search_gamma.py`).
