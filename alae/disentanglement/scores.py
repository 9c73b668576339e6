"""Disentanglement of a code against known generating factors: MIG, DCI, SAP, linear probes,
the FactorVAE score.

Each takes codes [N, D] (floats, one row per image) and factors [N, K] (the class index of
each image's value of each factor, as a factor dataset stores them), and follows
disentanglement_lib (Locatello et al., ICML 2019), the implementation the field's
comparisons use: MIG on codes discretised into 20 equal-width bins per dimension; DCI's
importance matrix from scikit-learn's gradient-boosted trees with their default settings
(a classifier per factor; informativeness is its held-out accuracy); SAP from one linear
SVM per (dimension, factor) pair on that dimension alone (discrete factors); the FactorVAE
score from a majority-vote classifier on the index of the lowest-variance normalised
dimension. The supervised metrics fit on one set of codes and score on another.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

MIG_BINS = 20
SAP_C = 0.01


def discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """[N, D] codes -> [N, D] bin indices: each dimension cut into `bins` equal-width bins over its range."""
    return np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1)


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[Da, Db] mutual information (nats) between the columns of two discrete arrays [N, Da], [N, Db]."""
    return np.array([[mutual_info_score(x, y) for y in b.T] for x in a.T])


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> dict:
    """Mutual Information Gap (Chen et al., "Isolating Sources of Disentanglement in VAEs",
    NeurIPS 2018): per factor, the gap between the two code dimensions sharing the most
    mutual information with it, divided by the factor's entropy; the mean over factors.

    Returns {"mig", "per_factor": [K], "mutual_information": [D][K] in nats}.
    """
    m = mutual_information(discretize(codes, bins), factors)
    h = np.array([mutual_info_score(f, f) for f in factors.T])
    top = np.sort(m, axis=0)[::-1]
    gap = (top[0] - top[1]) / h
    return {"mig": float(gap.mean()), "per_factor": gap.tolist(), "mutual_information": m.tolist()}


def importance_matrix(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray,
                      factors_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([D, K] importance of each code dimension for each factor, [K] held-out accuracy): one
    gradient-boosted tree classifier per factor, scikit-learn's defaults (as disentanglement_lib)."""
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    accuracy = np.zeros(factors.shape[1])
    for k in range(factors.shape[1]):
        model = GradientBoostingClassifier(random_state=0).fit(codes, factors[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        accuracy[k] = np.mean(model.predict(codes_test) == factors_test[:, k])
    return importance, accuracy


def dci(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray) -> dict:
    """DCI (Eastwood and Williams, "A Framework for the Quantitative Evaluation of Disentangled
    Representations", ICLR 2018), with gradient-boosted trees as disentanglement_lib:

    - disentanglement: per code dimension, 1 - the entropy (base K) of its importances over
      the factors, weighted by the dimension's share of all importance;
    - completeness: per factor, 1 - the entropy (base D) of its importances over the code
      dimensions, weighted by the factor's share;
    - informativeness: the mean held-out accuracy of the classifiers.

    Returns those, the per-dimension and per-factor terms and the importance matrix [D][K].
    """
    r, accuracy = importance_matrix(codes, factors, codes_test, factors_test)
    per_code = 1.0 - entropy(r.T + 1e-11, base=r.shape[1])
    per_factor = 1.0 - entropy(r + 1e-11, base=r.shape[0])
    weights = r if r.sum() > 0 else np.ones_like(r)
    return {
        "disentanglement": float(np.sum(per_code * weights.sum(axis=1) / weights.sum())),
        "completeness": float(np.sum(per_factor * weights.sum(axis=0) / weights.sum())),
        "informativeness": float(accuracy.mean()),
        "disentanglement_per_code": per_code.tolist(),
        "completeness_per_factor": per_factor.tolist(),
        "informativeness_per_factor": accuracy.tolist(),
        "importance": r.tolist(),
    }


def sap(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray) -> dict:
    """Separated Attribute Predictability (Kumar et al., "Variational Inference of Disentangled
    Latent Concepts from Unlabeled Observations", ICLR 2018), for discrete factors as
    disentanglement_lib: score[d, k] is the held-out accuracy of a linear SVM (C = 0.01,
    balanced classes) predicting factor k from code dimension d alone; SAP is the mean over
    factors of the gap between the two best dimensions.

    Returns {"sap", "per_factor": [K], "score": [D][K]}.
    """
    score = np.zeros((codes.shape[1], factors.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for d in range(codes.shape[1]):
            for k in range(factors.shape[1]):
                svm = LinearSVC(C=SAP_C, class_weight="balanced", random_state=0).fit(codes[:, d:d + 1], factors[:, k])
                score[d, k] = np.mean(svm.predict(codes_test[:, d:d + 1]) == factors_test[:, k])
    top = np.sort(score, axis=0)[::-1]
    gap = top[0] - top[1]
    return {"sap": float(gap.mean()), "per_factor": gap.tolist(), "score": score.tolist()}


def probe(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray) -> dict:
    """Linear probes (Alain and Bengio, "Understanding intermediate layers using linear
    classifier probes", 2016): per factor, the held-out accuracy of a multinomial logistic
    regression on the standardised code, beside chance (the held-out share of the most
    common value).

    Returns {"accuracy": [K], "chance": [K]}.
    """
    scaler = StandardScaler().fit(codes)
    x, x_test = scaler.transform(codes), scaler.transform(codes_test)
    accuracy, chance = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(factors.shape[1]):
            model = LogisticRegression(max_iter=1000).fit(x, factors[:, k])
            accuracy.append(float(np.mean(model.predict(x_test) == factors_test[:, k])))
            chance.append(float(np.bincount(factors_test[:, k]).max() / len(factors_test)))
    return {"accuracy": accuracy, "chance": chance}


FACTOR_VAE_BATCH = 64       # observations per vote, with one factor fixed
FACTOR_VAE_TRAIN = 10_000   # votes the majority-vote classifier is fitted on
FACTOR_VAE_EVAL = 5_000     # votes it is scored on
FACTOR_VAE_PRUNE = 0.05     # code dimensions of lower standard deviation (over all codes) are collapsed, left out


def factor_vae(codes: np.ndarray, factors: np.ndarray, rng: np.random.Generator,
               batch: int = FACTOR_VAE_BATCH, train: int = FACTOR_VAE_TRAIN, evaluate: int = FACTOR_VAE_EVAL) -> dict:
    """The FactorVAE score (Kim and Mnih 2018, section 4), as disentanglement_lib computes it.

    A vote: pick a factor k at random and a value of it, draw `batch` observations with factor k
    at that value, divide each code dimension's variance over the batch by its variance over all
    codes, and vote (k, the active dimension of lowest normalised variance). The classifier maps
    each dimension to the factor that most of its training votes name (majority vote); the score
    is its accuracy on the evaluation votes. Dimensions whose standard deviation over all codes is
    below FACTOR_VAE_PRUNE are left out (none left: score 0), as disentanglement_lib's `prune_dims`
    with the threshold of its study (it compares the square root of the variance). disentanglement_lib draws each batch afresh
    from the factor grid; here it is drawn, with replacement, from the observations given, whose
    other factors vary as they do among them.
    """
    variance = codes.var(axis=0, ddof=1)
    active = np.sqrt(variance) >= FACTOR_VAE_PRUNE
    if not active.any():
        return {"score": 0.0, "train_accuracy": 0.0, "active_dims": 0}
    rows_of = [{v: np.flatnonzero(factors[:, k] == v) for v in np.unique(factors[:, k])}
               for k in range(factors.shape[1])]

    def votes(count: int) -> np.ndarray:
        table = np.zeros((factors.shape[1], int(active.sum())), dtype=np.int64)
        for _ in range(count):
            k = rng.integers(factors.shape[1])
            pool = rows_of[k][factors[rng.integers(len(factors)), k]]
            local = codes[rng.choice(pool, batch)].var(axis=0, ddof=1)
            table[k, np.argmin(local[active] / variance[active])] += 1
        return table

    train_votes = votes(train)
    classifier = train_votes.argmax(axis=0)
    eval_votes = votes(evaluate)
    dims = np.arange(len(classifier))
    return {"score": float(eval_votes[classifier, dims].sum() / eval_votes.sum()),
            "train_accuracy": float(train_votes[classifier, dims].sum() / train_votes.sum()),
            "active_dims": int(active.sum())}
