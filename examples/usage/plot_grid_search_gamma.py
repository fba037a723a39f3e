"""
Choosing γ: its unit, and a grid search
=======================================

The margin weight ``gamma`` is the main parameter of the softmax estimators.
Its unit makes a value mean the same on any form of the input: the margin
term acts on the weights of the rows centered and scaled to a mean squared
norm of 100 (see :ref:`choosing-gamma`), so the papers' values for fixed
features, 0.001 to 0.02, work as written, whether the features are raw,
standardized, L2-normalized or PCA-reduced.

This example draws the clustering accuracy against γ on the digits data in
four such forms, next to K-means on the same input, with the papers' range
shaded; then chooses γ with a
:class:`~sklearn.model_selection.GridSearchCV` and a clustering score.
:data:`skentropy.metrics.clustering_accuracy_scorer` scores the ``predict``
output of the held-out fold with the Hungarian accuracy; permutation-invariant
scores of scikit-learn work by name (``scoring="adjusted_rand_score"``).
``y`` is used for scoring only: the estimators ignore it in ``fit``.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler, normalize

from skentropy import EntropyClustering
from skentropy.metrics import clustering_accuracy, clustering_accuracy_scorer

X, y = load_digits(return_X_y=True)
standardized = StandardScaler().fit_transform(X)
inputs = {
    "raw (64 features)": X,
    "standardized": standardized,
    "L2-normalized rows": normalize(X),
    "standardized, PCA 16": PCA(16, random_state=0).fit_transform(standardized),
}

# %%
# Accuracy against γ on four forms of the input
# ---------------------------------------------
gammas = [1e-3, 1e-2, 2e-2, 1e-1, 3e-1]
accuracy, kmeans_accuracy = {}, {}
for name, features in inputs.items():
    kmeans = KMeans(n_clusters=10, n_init=10, random_state=0).fit(features)
    kmeans_accuracy[name] = clustering_accuracy(y, kmeans.labels_)
    accuracy[name] = [
        clustering_accuracy(
            y,
            EntropyClustering(n_clusters=10, gamma=gamma, max_iter=25, random_state=0)
            .fit(features)
            .labels_,
        )
        for gamma in gammas
    ]
    print(
        f"{name}: K-means {kmeans_accuracy[name]:.3f}, EntropyClustering",
        " ".join(f"{a:.3f}" for a in accuracy[name]),
    )

fig, ax = plt.subplots(figsize=(6.4, 4))
ax.axvspan(1e-3, 2e-2, color="0.9", label="the papers' values")
for (name, curve), color in zip(accuracy.items(), "C0 C1 C2 C3".split(), strict=True):
    ax.semilogx(gammas, curve, "o-", color=color, label=name)
    ax.axhline(kmeans_accuracy[name], color=color, linestyle=":", linewidth=1)
ax.set(
    xlabel="gamma",
    ylabel="clustering accuracy",
    ylim=(0, 1),
    title="EntropyClustering (lines), K-means (dotted)",
)
ax.legend(loc="lower left", fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Much larger values (here 0.3 on some forms) shrink the weights until
# clusters are left empty; the estimator then warns and names a smaller γ.
#
# Grid search with labels
# -----------------------
search = GridSearchCV(
    EntropyClustering(n_clusters=10, max_iter=25, random_state=0),
    {"gamma": [1e-3, 1e-2, 2e-2]},
    scoring=clustering_accuracy_scorer,
    cv=2,
).fit(standardized, y)
print("best gamma:", search.best_params_["gamma"])

# %%
# Without any labels, the training loss cannot choose γ (it contains γ‖v‖², so
# it always prefers a small γ); use the stability scorer of
# :ref:`model-selection` instead
# (:ref:`sphx_glr_auto_examples_usage_plot_choose_k_and_gamma.py`). The
# estimators' ``score`` method (higher is better) is their negative training
# loss; it compares models with the same γ only. For a pipeline, put the step
# name in front: ``{"entropyclustering__gamma": gammas}`` in
# ``make_pipeline(StandardScaler(), EntropyClustering(10))``.
