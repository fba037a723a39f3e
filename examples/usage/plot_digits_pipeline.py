"""
Clustering digits in a pipeline
===============================

The estimators are ordinary scikit-learn clusterers, so they go at the end of a
:class:`~sklearn.pipeline.Pipeline`. Here the 8×8 images of
:func:`~sklearn.datasets.load_digits` are standardized, reduced to 32
dimensions by PCA and clustered into 10 clusters by
:class:`~skentropy.EntropyClustering`. The labels are used only to score the
result, with the Hungarian clustering accuracy
(:func:`skentropy.metrics.clustering_accuracy`).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skentropy import EntropyClustering
from skentropy.metrics import clustering_accuracy

X, y = load_digits(return_X_y=True)

pipeline = make_pipeline(
    StandardScaler(),
    PCA(n_components=32, random_state=0),
    EntropyClustering(n_clusters=10, lr=0.05, random_state=0),
)
labels = pipeline.fit_predict(X)
kmeans_labels = make_pipeline(
    StandardScaler(), KMeans(n_clusters=10, n_init=10, random_state=0)
).fit_predict(X)

entropy_accuracy = clustering_accuracy(y, labels)
kmeans_accuracy = clustering_accuracy(y, kmeans_labels)
print(f"clustering accuracy, entropy clustering: {entropy_accuracy:.3f}")
print(f"clustering accuracy, K-means: {kmeans_accuracy:.3f}")

# %%
# The mean image of each cluster
# ------------------------------
# ``predict_proba`` gives the soft assignments σ; the clusters' mean images,
# weighted by σ, show what each cluster has found.
probs = pipeline.predict_proba(X)
means = probs.T @ X / probs.sum(axis=0)[:, None]
fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
for k, ax in enumerate(axes):
    ax.imshow(means[k].reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{np.sum(labels == k)}", fontsize=9)
    ax.axis("off")
fig.suptitle("Cluster means (title: number of images)")
plt.show()

# %%
# The clusters are about equally large (the fairness term asks for equal
# proportions by default, see ``prior``) and most means show one digit; with a
# clustering accuracy of about 0.8, roughly one image in five sits in the
# cluster of another digit, and some digits share a cluster.
