"""
Choosing γ by grid search
=========================

The margin weight ``gamma`` is the main parameter of the softmax estimators.
With labels for some data, choose it like any hyperparameter: a
:class:`~sklearn.model_selection.GridSearchCV` with a clustering score.
:data:`skentropy.metrics.clustering_accuracy_scorer` scores the ``predict``
output of the held-out fold with the Hungarian accuracy; permutation-invariant
scores of scikit-learn work by name (``scoring="adjusted_rand_score"``).
``y`` is used for scoring only: the estimators ignore it in ``fit``.

Without any labels, the training loss cannot choose γ (it contains γ‖v‖², so
it always prefers a small γ). A label-free proxy is *stability*: fit twice
with different seeds and compare the two clusterings with the adjusted Rand
index; settings whose result does not depend on the seed are preferable.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from skentropy import EntropyClustering
from skentropy.metrics import clustering_accuracy_scorer

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)

gammas = [1e-5, 1e-4, 1e-3, 1e-2]
search = GridSearchCV(
    EntropyClustering(n_clusters=10, max_iter=40, random_state=0),
    {"gamma": gammas},
    scoring=clustering_accuracy_scorer,
    cv=2,
).fit(X, y)
print("best gamma:", search.best_params_["gamma"])

# %%
# Label-free: stability over seeds
# --------------------------------
stability = []
for gamma in gammas:
    runs = [
        EntropyClustering(n_clusters=10, gamma=gamma, max_iter=40, random_state=seed)
        .fit_predict(X)
        for seed in (1, 2)
    ]
    stability.append(adjusted_rand_score(*runs))

# %%
# Plot
# ----
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogx(gammas, search.cv_results_["mean_test_score"], "o-",
            label="held-out clustering accuracy")
ax.semilogx(gammas, stability, "s--", label="stability (ARI between two seeds)")
ax.set(xlabel="gamma", ylim=(0, 1))
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The estimators' ``score`` method (higher is better) is their negative
# training loss; it compares models with the same γ only. For a pipeline, put
# the step name in front: ``{"entropyclustering__gamma": gammas}`` in
# ``make_pipeline(StandardScaler(), EntropyClustering(10))``.
