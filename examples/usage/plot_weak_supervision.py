"""
Weak supervision: a few labels
==============================

With ``semi_supervised=True`` the estimators use ``y`` in ``fit``: ``y[i]`` in
``0..n_clusters - 1`` labels sample i, ``-1`` leaves it unlabeled, and the
cross-entropy of the labeled samples is added to the clustering loss
(collision cross-entropy paper §5.3; entropy clustering supplement E.4).
Cluster k then means class k, so plain accuracy applies. By default
(``semi_supervised=False``) ``y`` is ignored, as by every scikit-learn
clusterer.

Here a growing share of the digits is labeled; accuracy is measured on the
unlabeled rest.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from skentropy import EntropyClustering

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)

rng = np.random.default_rng(0)
order = rng.permutation(len(y))
fractions = [0.0, 0.02, 0.1]
accuracies = []
for fraction in fractions:
    labeled = order[: int(fraction * len(y))]
    y_partial = np.full_like(y, -1)
    y_partial[labeled] = y[labeled]
    model = EntropyClustering(
        n_clusters=10, semi_supervised=True, lr=0.05, max_iter=50, random_state=0
    ).fit(X, y_partial)
    unlabeled = y_partial == -1
    # Plain accuracy: with labels, cluster k is class k (no matching needed).
    accuracies.append(np.mean(model.labels_[unlabeled] == y[unlabeled]))
    print(f"{fraction:5.0%} labeled: accuracy {accuracies[-1]:.3f}")

# %%
# Without labels the cluster indices are arbitrary, so plain accuracy is near
# chance; a handful of labels per class names the clusters and also improves
# them.
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.plot([100 * f for f in fractions], accuracies, "o-")
ax.set(
    xlabel="labeled samples (%)", ylabel="accuracy on unlabeled samples", ylim=(0, 1)
)
fig.tight_layout()
plt.show()
