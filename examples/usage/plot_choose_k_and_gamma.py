"""
Choosing K and γ without labels
===============================

Clustering starts without labels, so neither the number of clusters K nor
the margin weight ``gamma`` can be tuned against a score of labels. The
training loss cannot choose them either: it contains γ‖v‖² and changes its
scale with K.

:func:`skentropy.model_selection.unsupervised_scorer` scores a setting by its
*stability* on held-out data (Lange et al., 2004): a model fitted on one half
of the data labels the other half, a copy fitted on that other half labels it
too, and the two labelings are compared, adjusted for chance (0 for unrelated
labelings, 1 for the same ones). A setting that finds structure of the data
finds the same clusters on both halves. This example chooses K and γ for the
digits data that way, and shows next to it what labels would have chosen.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from skentropy import EntropyClustering
from skentropy.metrics import clustering_accuracy_scorer
from skentropy.model_selection import select_n_clusters, unsupervised_scorer
from skentropy.plotting import plot_n_clusters_selection

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
# At most 30 epochs per fit keep the example fast; an integer random_state
# makes every score below deterministic.
model = EntropyClustering(max_iter=30, random_state=0)

# %%
# The number of clusters
# ----------------------
# :func:`~skentropy.model_selection.select_n_clusters` splits the data into
# halves (``n_repeats`` times), fits one model per half and candidate K, each
# with its own seed, and scores every pair of fits by how well their labels of
# the data agree. One split into halves (two fits, one pair) keeps the example
# fast, but one pair is a noisy score: on real data use the default
# ``n_repeats=3`` (six fits, fifteen pairs) or more, a finer grid of K, and
# read the spread of the scores, not only the argmax. The labels of digits
# have ten classes.
candidates = [6, 8, 10, 12, 14]
result = select_n_clusters(model, X, candidates, n_repeats=1, random_state=0)
for k, score in zip(result.candidates, result.mean_score, strict=True):
    print(f"K = {k}: stability {score:.3f}")
print("chosen K:", result.n_clusters)

fig, ax = plt.subplots(figsize=(6, 3.8))
plot_n_clusters_selection(result, ax=ax)
ax.axvline(10, color="tab:green", linestyle=":", label="classes of the labels")
ax.legend()
fig.tight_layout()

# %%
# The margin weight γ
# -------------------
# The scorer works in :class:`~sklearn.model_selection.GridSearchCV` like any
# other, with ``fit(X)`` alone. Here the labels are passed too, but only for a
# second, label-based score (the Hungarian accuracy of the held-out
# predictions) computed in the same search for comparison: the estimator and
# the stability scorer ignore ``y``.
gammas = [1e-2, 1e-1, 1.0]
search = GridSearchCV(
    model.set_params(n_clusters=10),
    {"gamma": gammas},
    scoring={"stability": unsupervised_scorer, "accuracy": clustering_accuracy_scorer},
    refit=False,
    cv=2,
).fit(X, y)
stability = search.cv_results_["mean_test_stability"]
accuracy = search.cv_results_["mean_test_accuracy"]
print("gamma chosen without labels:", gammas[int(np.argmax(stability))])
print("gamma chosen with labels:   ", gammas[int(np.argmax(accuracy))])

fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogx(gammas, stability, "o-", label="stability (no labels)")
ax.semilogx(gammas, accuracy, "s--", label="held-out accuracy (labels)")
ax.set(xlabel="gamma", ylim=(0, 1))
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The largest γ empties clusters (the estimator warns about it); the stability
# score counts an empty cluster as one that was not found again, so it does
# not prefer such a γ although the clusters that remain are easy to find
# again. Stability is a proxy: it rewards reproducible clusterings, which need
# not be the classes of a labeling, and the choice of K in particular is
# noisy. See :ref:`model-selection` for what it costs, how it was measured
# and where it fails.
