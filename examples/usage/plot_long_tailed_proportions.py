"""
Clusters of unknown sizes: ``prior="auto"``
===========================================

The fairness term of the estimators pulls the cluster proportions towards
``prior``, equal shares by default. On data whose clusters differ much in
size, equal targets split the large clusters. With ``prior="auto"`` the
targets follow each model's own estimate of the cluster shares instead
(pulled towards equal shares, with no share below half of 1/K), and the
fitted estimate is the attribute ``prior_``.

Four blobs of 1,000, 400, 150 and 60 points in 16 dimensions: K-means, the
default equal targets and ``prior="auto"``, and the estimated shares next to
the true ones.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from skentropy import EntropyClustering, MaxMarginEntropyClustering

sizes = [1000, 400, 150, 60]
X, y = make_blobs(
    n_samples=sizes, n_features=16, cluster_std=2.0, center_box=(-6, 6), random_state=0
)
true_shares = np.array(sizes) / sum(sizes)

models = {
    "K-means": KMeans(n_clusters=4, n_init=10, random_state=0),
    "Entropy, equal prior": EntropyClustering(n_clusters=4, random_state=0),
    'Entropy, prior="auto"': EntropyClustering(
        n_clusters=4, prior="auto", random_state=0
    ),
    'MaxMargin, prior="auto"': MaxMarginEntropyClustering(
        n_clusters=4, prior="auto", random_state=0
    ),
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name, model in models.items():
        model.fit(X)
        print(f"{name:>24}: ARI {adjusted_rand_score(y, model.labels_):.3f}")

# %%
# The estimated share of each cluster next to the share of the blob most of
# its points come from.
fig, ax = plt.subplots(figsize=(6, 3.5))
width = 0.25
ax.bar(np.arange(4) - width, true_shares, width, label="true shares")
for offset, name in zip(
    (0, width), ('Entropy, prior="auto"', 'MaxMargin, prior="auto"'), strict=True
):
    model = models[name]
    blob_of_cluster = [np.bincount(y[model.labels_ == k]).argmax() for k in range(4)]
    estimate = np.zeros(4)
    np.add.at(estimate, blob_of_cluster, model.prior_)
    ax.bar(np.arange(4) + offset, estimate, width, label=f"{name}: prior_")
    print(f"{name}: prior_ {np.round(estimate, 3)}, true {np.round(true_shares, 3)}")
ax.set_xticks(range(4), [f"blob of {n}" for n in sizes])
ax.set_ylabel("share of the data")
ax.legend()
fig.tight_layout()
plt.show()
