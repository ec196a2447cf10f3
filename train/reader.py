"""The exam reader: the trunk's cell features, lesion-cell and image heads, a two-breast stage.

What is learnt, all inside training folds, by regularised logistic regressions (and one small
network) on the cached features of `train.trunk`, because 258 scans are few and every fit must be
cheap enough to nest:
- the cell head: is this 16x16-pixel cell inside a lesion circle? Positives are the cells of
  the circles; negatives are cells of normal breasts (and, fewer, cells of abnormal breasts
  outside their circles, and a few background cells). A lesion without coordinates is never
  used at cell level. Its sigmoid is the heat-map. With `Options.context` k it also reads the
  mean features of the cell's k x k neighbourhood (`neighbourhood`). It has one hidden ReLU
  layer (`CELL_HIDDEN`), or none.
- P(class | abnormal) and P(malignant | abnormal) from the average- and max-pooled features of
  the abnormal training scans only (a 6-class and a binary logistic regression); the malignancy
  head can also read a focused pooling (`FOCUS`, off), and is kept only where it beats the
  training rate of malignancy (`MALIGNANCY_SEARCH`).
- the reading stage (`edge.inference.reading.Reading`): P(abnormal) from the heat-map evidence of a scan,
  alone and beside the other breast, fitted on inner out-of-fold evidence of the training folds.
What ships is the trunk alone as the int8 network (`build_network`: one output of cell features
per scale) and the heads beside it in the manifest, run in float by `edge.inference.heads` on the board:
the same function on the same int8 features as here, so the board computes exactly what was
cross-validated. (`build_model` puts the heads in the graph as layers, for the gradient-trained
path of `train.distributed`, which ships them split the same way: `split_model`.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge import LABELS
from edge.inference.heads import Heads, Outputs, cell_head, neighbourhood, output_names, outputs, pooled
from edge.inference.reading import Logistic, Reading, answer, scan_evidence
from train import metrics
from train.data import Dataset, heatmap_target

ABNORMAL_KINDS = [i for i, label in enumerate(LABELS) if label != "NORM"]
NORM = LABELS.index("NORM")
NORM_BIAS = -30.0
"""Bias of the NORM column of the classes head: the head says what a finding is, not whether there is one."""


FOCUS = 0.0
"""Sharpness of an optional focused pooling for the malignancy head: each scale's cells averaged
with softmax(focus x cell logit) weights, what the hottest cells look like (softmax, multiply and
mean compile for the Edge TPU; top-k does not). On the frozen trunk's int8 features it raised
malignancy AUC from 0.623 to 0.699 (sharpness 2, `research/heads/focus_probe.py`); on the distilled
trunk's it adds nothing (0.680 with and without), so the shipped graph leaves it out."""

CONTEXT = 3
"""The cell head reads each cell's features and the mean of its 3 x 3 neighbourhood: a lesion
spans several 16-pixel cells, and its surroundings say whether a bright cell is tissue or a
finding. On the distilled trunk's int8 features: AUC abnormal 0.723 alone, 0.762 with 3 x 3,
0.753 with 5 x 5 (research/ablation)."""


CELL_HIDDEN, CELL_ALPHA = 64, 10.0
"""The cell head is a network with one hidden layer of 64 ReLU units (L2 10 on standardised features),
not a logistic regression: whether a cell is a lesion is not one direction in the trunk's features.
On the distilled trunk's int8 features (research/ablation): AUC abnormal 0.764 -> 0.782,
specificity at the threshold 0.371 -> 0.425, pointing game 36 -> 40 of 88. It runs in numpy beside
the int8 network (`edge.inference.heads.Heads.cell_logits`), about 2 x 10^7 multiply-adds a scan. Chosen on the
CV folds among seven settings (research/reader/cell_head.txt, `research/reader/cell_head_probe.py`, 41 minutes):
AUC abnormal 0.745-0.782, specificity 0.41-0.47 for all but one, so these figures are optimistic by the choice."""

CELL_SEEDS = 5
"""The cell head is the mean of 5 such networks, fitted from different random starts on the same cells
(written as one network, their hidden layers side by side: 320 units). One network's out-of-fold
figures hang on its start: at seeds 0 to 4, AUC abnormal 0.782, 0.763, 0.766, 0.747 and 0.758 (mean
0.763). Five averaged, at seeds 0 to 3: 0.776, 0.780, 0.777 and 0.768 (mean 0.775); balanced accuracy
0.302 against 0.296 on average, specificity at the threshold 0.392 against 0.402 (research/reader/
ensemble.txt, `research/reader/ensemble_probe.py`). The single network shipped before, seed 0, was the best of
its five draws. Cost: about 10^8 multiply-adds of numpy a scan."""

KIND_TWINS = False
"""Off in the shipped reader. On, the kind head learns each abnormal training scan twice: from the
int8 trunk's features (what the board reads) and from the float network's (the same weights,
activations not rounded), so it puts less weight where rounding moves the pooled features. With
one cell-head network, out of fold it changed the kinds' balanced accuracy only within noise
(0.309 -> 0.295) and raised the float-vs-int8 label agreement of the final heads from 0.818 to
0.888 (research/ablation, `python research/reader/cell_head_probe.py`). The board computes the
cross-validated int8 answers either way; only `edge-convert`'s float reference would come closer, and not to its 0.97 bound."""

KIND_C = (0.005, 0.01, 0.02, 0.05, 0.1)
"""The kind head's L2 strengths to choose among, with its pooled features (each scale's global
average and maximum, or the average alone), inside the training folds by an inner patient-grouped
cross-validation of its balanced accuracy on the abnormal training scans: a 6-class fit on about
70 scans and 512 features overfits. Out of fold, balanced accuracy 0.245 -> 0.294 and macro-F1
0.202 -> 0.230 (research/ablation); the candidates came from `research/heads/kind_probe.py`."""

MALIGNANCY_SEARCH = True
"""The malignancy head is fitted only where it earns its place: inside the training folds, an inner
patient-grouped cross-validation of the abnormal training scans compares it at each of `KIND_C`'s
strengths with no head at all (P(malignant | abnormal) the training rate), by the log-loss of
P(malignant | abnormal), and the best is kept. Out of fold, the head fitted always ranked the malignant
findings among the abnormal scans no better than chance (AUC 0.48), so it only blurred P(abnormal):
malignant-vs-rest AUC 0.693 with it, 0.756 without it (research/reader/malignancy.txt, `python
research/reader/malignancy_probe.py ../shared/mias`).
That comparison, on these folds, is why the candidate 'no head' exists."""


@dataclass(frozen=True)
class Options:
    """The reader's choices; which were compared on the CV folds: research/ablation/ablation.md."""

    cell_c: float = 0.01  # inverse L2 strength of the cell head
    image_c: float = 0.05  # of the classes and malignancy heads
    normal_cells: int = 200  # negative cells drawn per normal training breast
    abnormal_cells: int = 50  # negative cells drawn per abnormal breast, outside its circles
    background_cells: int = 10
    cell_hidden: int = CELL_HIDDEN  # units of the cell head's hidden ReLU layer (0: a logistic regression)
    cell_alpha: float = CELL_ALPHA  # its L2 strength, on standardised features
    cell_seeds: int = CELL_SEEDS  # cell-head networks from different random starts, their logits averaged (one wider network)
    hard_negatives: int = 0  # if > 0: refit with each normal breast's N hottest cells added (weight 3)
    focus: float = FOCUS  # sharpness of the hottest-cell pooling the malignancy head reads (0: none)
    context: int = CONTEXT  # odd k >= 3: the cell head also reads the mean features of each cell's k x k neighbourhood (0: none)
    paired: bool = True  # read each scan beside the other breast
    kind_search: bool = True  # choose the kind head's pooling and strength inside the training folds (KIND_C); off: both poolings at image_c
    kind_twins: bool = KIND_TWINS  # the kind head also learns from the float network's features of the same scans (`KIND_TWINS`)
    malignancy_search: bool = MALIGNANCY_SEARCH  # the malignancy head, or none, chosen inside the training folds (`MALIGNANCY_SEARCH`)
    seed: int = 0

    def __post_init__(self):
        if self.context and (self.context < 3 or self.context % 2 == 0):
            raise ValueError(f"context must be 0 or an odd neighbourhood side of at least 3, got {self.context}")

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def breast_cells(images: np.ndarray, grid: int) -> np.ndarray:
    """(n, grid, grid) bool: cells whose pixels are mostly breast (prepare() leaves background near 0)."""
    n, size = images.shape[0], images.shape[1]
    step = size // grid
    return images.reshape(n, grid, step, grid, step).mean((2, 4)) > 8


def _logistic(x: np.ndarray, y: np.ndarray, c: float, weight: np.ndarray | None = None, balanced: bool = True):
    """A standardised L2 logistic regression, returned as (weights, bias) on the raw x."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:  # a small training set with one class only: no direction to learn
        return np.zeros((1, x.shape[1])), np.zeros(1), np.unique(y)
    mean, scale = x.mean(0), x.std(0) + 1e-3
    fit = LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=500)
    fit.fit((x - mean) / scale, y, sample_weight=weight)
    coef = fit.coef_ / scale.astype(np.float64)  # (k, d), float64 as the heads travel (edge.inference.heads.Heads.to_json)
    bias = fit.intercept_ - coef @ mean.astype(np.float64)
    return coef, bias, fit.classes_


def _cell_table(features, data: Dataset, index, breast, options: Options, rng, extra=()):
    """Cell features and targets of the training scans `index` (plus (features, weight) of `extra`)."""
    grid = features.shape[1]
    xs, ys = [], []
    for i in index:
        record = data.records[i]
        if record.lesions_without_location:
            continue
        cells = features[i].reshape(-1, features.shape[-1])
        target = heatmap_target(data.circles[i], data.size, grid, False).reshape(-1)
        inside = breast[i].reshape(-1)
        if record.abnormal:
            positive = np.flatnonzero(target == 1)
            negative = np.flatnonzero((target == 0) & inside)
            negative = rng.choice(negative, min(len(negative), options.abnormal_cells), replace=False)
            xs += [cells[positive], cells[negative]]
            ys += [np.ones(len(positive)), np.zeros(len(negative))]
        else:
            negative = np.flatnonzero(inside)
            negative = rng.choice(negative, min(len(negative), options.normal_cells), replace=False)
            background = np.flatnonzero(~inside)
            background = rng.choice(background, min(len(background), options.background_cells), replace=False)
            chosen = np.concatenate([negative, background])
            xs.append(cells[chosen])
            ys.append(np.zeros(len(chosen)))
    weights = [np.ones(sum(len(y) for y in ys))]
    for x, w in extra:  # more negatives, weighted
        xs.append(x)
        ys.append(np.zeros(len(x)))
        weights.append(np.full(len(x), w))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(weights)


def _cell_head(features: np.ndarray, data: Dataset, index: np.ndarray, options: Options, rng):
    """The lesion-cell head of one scale, fitted on the cell table: (hidden layer or None, weights, bias);
    `features` already with their `neighbourhood`."""
    breast = breast_cells(data.images, features.shape[1])
    x, y, w = _cell_table(features, data, index, breast, options, rng)
    head = _cell_fit(x, y, w, options)
    if options.hard_negatives:  # the normal breasts' hottest cells again, weighted: false positives
        hard = []
        for i in index:
            if not data.records[i].abnormal:
                cells = features[i].reshape(-1, features.shape[-1])
                hard.append(cells[np.argsort(cell_head(cells, *head))[-options.hard_negatives :]])
        x, y, w = _cell_table(features, data, index, breast, options, rng, [(np.concatenate(hard), 3.0)])
        head = _cell_fit(x, y, w, options)
    return head


def _cell_fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, options: Options):
    """(hidden layer (W, b) or None, weights, bias) on the raw x: a logistic regression, or with
    `options.cell_hidden` units a one-hidden-layer ReLU network (L2 `cell_alpha`, early stopping on
    a tenth of the cells when each class has 20 or more, classes balanced by weight), standardisation
    folded into the first layer."""
    if not options.cell_hidden:
        coef, bias, _ = _logistic(x, y, options.cell_c, weight)
        return None, coef[0], float(bias[0])
    units = options.cell_hidden
    if len(np.unique(y)) < 2:  # a small training set with one class only: no direction to learn
        units *= options.cell_seeds
        return (np.zeros((x.shape[1], units)), np.zeros(units)), np.zeros(units), 0.0
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(0).astype(np.float64), x.std(0).astype(np.float64) + 1e-3
    balance = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    enough = np.bincount(y.astype(int)).min() >= 20  # early stopping holds out a stratified tenth of the cells
    fits = []
    for seed in range(options.seed, options.seed + options.cell_seeds):
        fit = MLPClassifier((options.cell_hidden,), alpha=options.cell_alpha, max_iter=60, early_stopping=bool(enough),
                            n_iter_no_change=5, random_state=seed)
        with warnings.catch_warnings():  # without early stopping a small table runs its 60 epochs out: expected
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit.fit((x - mean) / scale, y, sample_weight=balance * weight)
        fits.append(fit)
    # the mean logit of the networks is itself one network, their hidden layers side by side
    w1, b1 = np.concatenate([f.coefs_[0] for f in fits], 1), np.concatenate([f.intercepts_[0] for f in fits])
    w2 = np.concatenate([f.coefs_[1][:, 0] for f in fits]) / len(fits)
    b2 = float(np.mean([f.intercepts_[1][0] for f in fits]))
    hidden = (w1 / scale[:, None], b1 - (mean / scale) @ w1)
    return hidden, w2.astype(np.float64), b2


def fit_heads(scales: list[np.ndarray], data: Dataset, index: np.ndarray, options: Options,
              twins: list[np.ndarray] | None = None) -> Heads:
    """All heads from the training scans `index` only (`scales`: cell features, finest first; `twins`:
    the float network's features of the same scans, a second view for the kind head, `KIND_TWINS`)."""
    rng = np.random.default_rng(options.seed)
    cells = [_cell_head(neighbourhood(f, options.context), data, index, options, rng) for f in scales]
    cell_w, cell_b = tuple(c[1] for c in cells), tuple(c[2] for c in cells)
    hidden = tuple(c[0] for c in cells) if options.cell_hidden else ()
    cell_heads = Heads(cell_w, cell_b, np.zeros(0), np.zeros(0), np.zeros(0), 0.0, options.focus, options.context, hidden)
    pool, focus_pool = pooled(scales), pooled(scales, cell_heads)
    abnormal = np.array([i for i in index if data.records[i].abnormal])
    patients = [data.records[i].patient for i in abnormal]
    classes_w, classes_b = kind_head(pool, scales[0].shape[-1], data, index, options, None if twins is None else pooled(twins))
    malignant = data.malignant[abnormal]
    c = _malignancy_choice(focus_pool[abnormal], malignant, patients, options) if options.malignancy_search else options.image_c
    if len(np.unique(malignant)) == 2 and c is not None:
        coef, bias, _ = _logistic(focus_pool[abnormal], malignant, c)
        malignant_w, malignant_b = coef[0], float(bias[0])
    else:  # no head chosen, or a fold without one of the two severities: the training rate
        rate = float(np.clip(malignant.mean(), 0.01, 0.99))
        malignant_w, malignant_b = np.zeros(focus_pool.shape[1]), float(np.log(rate / (1 - rate)))
    return replace(cell_heads, classes_w=classes_w, classes_b=classes_b, malignant_w=malignant_w, malignant_b=malignant_b)


def kind_head(pool: np.ndarray, channels: int, data: Dataset, index: np.ndarray, options: Options,
              twin_pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(weights, bias) of P(kind | abnormal) on the pooled features (`edge.inference.heads.pooled` of `channels`-channel
    cells), from the training scans `index` whose finding is of a known kind (`twin_pool`: the float
    network's pooled features, `KIND_TWINS`)."""
    known = np.array([i for i in index if data.records[i].abnormal and data.records[i].kind_known], int)
    classes_w = np.zeros((pool.shape[1], len(LABELS)))
    classes_b = np.full(len(LABELS), NORM_BIAS)
    if not len(known):  # a source that says only "cancer or not": every kind alike
        classes_b[ABNORMAL_KINDS] = 0.0
        return classes_w, classes_b
    patients = [data.records[i].patient for i in known]
    x, kinds, women = pool[known], data.class_index[known], patients
    if twin_pool is not None and options.kind_twins:
        x, kinds, women = np.concatenate([x, twin_pool[known]]), np.tile(kinds, 2), patients * 2
    columns, c = np.ones(pool.shape[1], bool), options.image_c
    if options.kind_search:
        columns, c = _kind_choice(x, kinds, women, channels, options)
    coef, bias, seen = _logistic(x[:, columns], kinds, c)
    coef = _spread(coef, columns)
    if len(seen) == 2:  # sklearn gives one row for two classes
        coef, bias = np.stack([-coef[0], coef[0]]) / 2, np.array([-bias[0], bias[0]]) / 2
    for row, kind in enumerate(seen):
        classes_w[:, kind], classes_b[kind] = coef[row], bias[row]
    return classes_w, classes_b


def _spread(coef: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Weights fitted on `columns` of the pooled features, as weights on all of them (zeros elsewhere)."""
    full = np.zeros((len(coef), len(columns)))
    full[:, columns] = coef
    return full


def _kind_choice(pool: np.ndarray, kinds: np.ndarray, patients: list, channels: int, options: Options):
    """(pooled columns, C) of the kind head: the pooling x KIND_C candidate with the best balanced
    accuracy in an inner patient-grouped cross-validation of these abnormal scans; with too few of
    them to split, both poolings at options.image_c."""
    average = (np.arange(pool.shape[1]) // channels) % 2 == 0  # pooled: [average, max] per scale
    default = np.ones(pool.shape[1], bool), options.image_c
    folds = _inner_folds(kinds, patients, options.seed)
    if folds is None:
        return default
    best, best_score = default, -1.0
    for columns in (np.ones(pool.shape[1], bool), average):
        for c in KIND_C:
            predicted = np.zeros(len(kinds), int)
            for train, test in folds:
                coef, bias, seen = _logistic(pool[train][:, columns], kinds[train], c)
                scores = pool[test][:, columns] @ coef.T + bias
                predicted[test] = seen[scores.argmax(1)] if len(seen) > 2 else seen[(scores[:, 0] > 0).astype(int)]
            score = metrics.balanced_accuracy(kinds, predicted)
            if score > best_score:
                best, best_score = (columns, c), score
    return best


def _inner_folds(y: np.ndarray, patients: list, seed: int) -> list | None:
    """Up to 4 patient-grouped folds stratified by y, for a choice inside a training fold (None: too few to split)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    splits = min(4, len(set(patients)), int(np.unique(y, return_counts=True)[1].max()))
    if splits < 2 or len(np.unique(y)) < 2:
        return None
    with warnings.catch_warnings():  # a class with fewer scans than folds: expected with ~70 abnormal scans
        warnings.simplefilter("ignore", UserWarning)
        return list(StratifiedGroupKFold(splits, shuffle=True, random_state=seed).split(y, y, patients))


def _malignancy_choice(pool: np.ndarray, malignant: np.ndarray, patients: list, options: Options) -> float | None:
    """The malignancy head's L2 strength among `KIND_C`, or None for no head (the training rate): the lowest
    inner-cross-validated log-loss of P(malignant | abnormal) on these abnormal scans (`MALIGNANCY_SEARCH`);
    with too few of them to split, options.image_c."""
    from sklearn.metrics import log_loss

    folds = _inner_folds(malignant.astype(int), patients, options.seed)
    if folds is None:
        return options.image_c
    p = {c: np.zeros(len(malignant)) for c in (None, *KIND_C)}
    for train, test in folds:
        p[None][test] = malignant[train].mean()
        for c in KIND_C:
            coef, bias, _ = _logistic(pool[train], malignant[train], c)
            p[c][test] = 1 / (1 + np.exp(-(pool[test] @ coef[0] + bias[0])))
    return min(p, key=lambda c: log_loss(malignant, p[c]))


def evidence(out: Outputs) -> np.ndarray:
    """(n, 2 or 3) `edge.inference.reading.scan_evidence` of every scan."""
    return np.stack([scan_evidence(h, None if out.image is None else out.image[i]) for i, h in enumerate(out.heatmap)])


def partners(data: Dataset) -> np.ndarray:
    """Index of the other breast of each scan in `data` (-1: none), by MIAS patient and side."""
    position = {(r.patient, r.side): i for i, r in enumerate(data.records)}
    return np.array([position.get((r.patient, "left" if r.side == "right" else "right"), -1) for r in data.records])


def read_beside(data: Dataset, paired: bool) -> list[str]:
    """Each scan's partner as the predictions table names it: the other breast's id, or "" when read alone."""
    return [data.records[j].id if paired and j >= 0 else "" for j in partners(data)]


def fit_reading(ev: np.ndarray, partner: np.ndarray, y: np.ndarray, index: np.ndarray) -> Reading:
    """The reading stage from evidence of the scans `index` (out-of-fold evidence: never in-sample)."""
    index = np.asarray(index)
    single_coef, single_bias, _ = _logistic(ev[index], y[index], 1.0, balanced=False)
    single = Logistic(tuple(single_coef[0]), float(single_bias[0]))
    paired = index[partner[index] >= 0]
    if len(np.unique(y[paired])) < 2:  # no pairs to learn from (a source without sides): the partner weighs nothing
        return Reading(single, Logistic((*single.weights, *(0.0,) * ev.shape[1]), single.bias))
    x = np.concatenate([ev[paired], ev[partner[paired]]], axis=1)
    paired_coef, paired_bias, _ = _logistic(x, y[paired], 1.0, balanced=False)
    return Reading(single, Logistic(tuple(paired_coef[0]), float(paired_bias[0])))


def read(reading: Reading, ev: np.ndarray, partner: np.ndarray, rows: np.ndarray, paired: bool) -> np.ndarray:
    """P(abnormal) of the scans `rows`, each beside its partner when `paired` and it has one."""
    return np.array(
        [reading.p_abnormal(ev[i], ev[partner[i]] if paired and partner[i] >= 0 else None) for i in rows]
    )


@dataclass
class FoldResult:
    """Out-of-fold outputs of every scan, and what each test fold was read with."""

    probs: np.ndarray
    abnormal: np.ndarray
    malignant: np.ndarray
    heatmaps: np.ndarray
    threshold: np.ndarray  # per scan: its test fold's threshold, chosen on the training folds
    readings: dict[int, Reading]


def _take(scales: list[np.ndarray], rows: np.ndarray) -> list[np.ndarray]:
    return [f[rows] for f in scales]


def cross_validate(scales: list[np.ndarray], data: Dataset, folds: np.ndarray, options: Options, progress=None,
                   twins: list[np.ndarray] | None = None) -> FoldResult:
    """Nested, patient-grouped: for each test fold, heads fitted on the other folds; the reading
    stage and the triage threshold (for 90% of the women with a finding) fitted on the inner
    out-of-fold evidence of those folds (`twins`: the float network's features, for `fit_heads`)."""
    n = len(data.records)
    y = data.abnormal.astype(int)
    partner = partners(data)
    probs, abnormal, malignant = np.zeros((n, len(LABELS))), np.zeros(n), np.zeros(n)
    heatmaps = np.zeros((n, scales[0].shape[1], scales[0].shape[2]), np.float32)
    threshold = np.zeros(n)
    readings = {}
    ks = sorted(set(folds.tolist()))
    for k in progress(ks, desc="folds") if progress else ks:
        training = np.flatnonzero(folds != k)
        inner_ev = np.zeros((n, 2))
        for j in sorted(set(folds[training].tolist())):
            inner_train = np.flatnonzero((folds != k) & (folds != j))
            held = np.flatnonzero(folds == j)
            inner_ev[held] = evidence(outputs(_take(scales, held), fit_heads(scales, data, inner_train, options, twins)))
        reading = fit_reading(inner_ev, partner, y, training)
        inner_p = read(reading, inner_ev, partner, training, options.paired)
        threshold_k = metrics.woman_threshold(inner_p, y[training], data.women[training])
        test = np.flatnonzero(folds == k)
        out = outputs(_take(scales, test), fit_heads(scales, data, training, options, twins))
        ev = np.zeros((n, 2))
        ev[test] = evidence(out)
        p = read(reading, ev, partner, test, options.paired)
        for row, i in enumerate(test):
            a = answer(p[row], out.classes[row], out.malignant[row], threshold_k)
            probs[i] = [a.probabilities[label] for label in LABELS]
            abnormal[i], malignant[i] = a.abnormal, a.malignant
        heatmaps[test] = out.heatmap
        threshold[test] = threshold_k
        readings[int(k)] = reading
    return FoldResult(probs, abnormal, malignant, heatmaps, threshold, readings)


def final_reading(scales: list[np.ndarray], data: Dataset, folds: np.ndarray, options: Options,
                  twins: list[np.ndarray] | None = None) -> tuple[Heads, Reading, float]:
    """The shipped heads (all scans), reading stage and threshold (fitted on 5-fold out-of-fold evidence)."""
    n = len(data.records)
    y = data.abnormal.astype(int)
    partner = partners(data)
    ev = np.zeros((n, 2))
    for k in sorted(set(folds.tolist())):
        test = np.flatnonzero(folds == k)
        ev[test] = evidence(outputs(_take(scales, test), fit_heads(scales, data, np.flatnonzero(folds != k), options, twins)))
    everyone = np.arange(n)
    reading = fit_reading(ev, partner, y, everyone)
    if not options.paired:  # the partner weighs nothing: every scan is read alone
        reading = Reading(reading.single, Logistic((*reading.single.weights, 0.0, 0.0), reading.single.bias))
    threshold = metrics.woman_threshold(read(reading, ev, partner, everyone, options.paired), y, data.women)
    return fit_heads(scales, data, everyone, options, twins), reading, threshold


def build_network(size: int, factors: tuple[int, ...], batch_size: int | None = 1, tuned=None):
    """The shipped network: the trunk at each scale f, reading the input average-pooled f x f (as
    `scale_images` does), its cell features the outputs `cells0`, `cells1`, ... (`edge.inference.heads`)."""
    import keras
    from keras import layers

    from train import trunk

    inputs = keras.Input(shape=(size, size, 1), batch_size=batch_size, name="scan")
    outputs = []
    for name, f in zip(output_names(len(factors)), factors):
        x = inputs if f == 1 else layers.AveragePooling2D(f, name=f"pool{f}")(inputs)
        scale_in, cells = trunk.build(size // f, batch_size=batch_size, tuned=tuned)
        cells = keras.Model(scale_in, cells, name=f"trunk{f}")(x)
        outputs.append(layers.Identity(name=name)(cells))
    return keras.Model(inputs, outputs, name="mias_edge_trunk")


def build_model(size: int, heads: Heads, factors: tuple[int, ...], batch_size: int | None = 1, tuned=None):
    """The trunk at each scale and the heads as one Keras network with four outputs (classes,
    abnormal, malignant, heatmap): what `train.distributed` trains by gradient.

    Scale f reads the input average-pooled f x f (`scale_images` does the same in training), with
    its own copy of the trunk (`tuned`: `train.distil`'s weights); its cell probabilities are repeated onto the finest grid and the
    scales averaged, exactly as `outputs` does. With a context, the cell head and the focus
    logit also read the cells' k x k mean (`neighbourhood`, `_cell_logit`); the pooled and
    focused features stay the cells' own. Linear cell heads only (`Options(cell_hidden=0)`)."""
    if heads.cell_hidden:
        raise ValueError("a cell head with a hidden layer has no graph form here: fit the heads with cell_hidden=0")
    import keras
    from keras import layers

    from train import trunk

    inputs = keras.Input(shape=(size, size, 1), batch_size=batch_size, name="scan")
    grid = size // trunk.STRIDE // factors[0]
    heats, pools, focus_pools = [], [], []
    for f, w, b in zip(factors, heads.cell_w, heads.cell_b):
        x = inputs if f == 1 else layers.AveragePooling2D(f, name=f"pool{f}")(inputs)
        scale_in, cells = trunk.build(size // f, batch_size=batch_size, tuned=tuned)
        cells = keras.Model(scale_in, cells, name=f"trunk{f}")(x)
        around = None
        if heads.context:  # AVERAGE_POOL_2D 'same' leaves the padding out of the mean, as `neighbourhood` does
            around = layers.AveragePooling2D(heads.context, strides=1, padding="same", name=f"around{f}")(cells)
        logit = _cell_logit(cells, around, w, b, f"cell_head{f}")
        heat = layers.Activation("sigmoid", name=f"heat{f}")(logit)
        repeat = f // factors[0]
        # nearest-neighbour resizing by a whole factor repeats each cell: RESIZE_NEAREST_NEIGHBOR on the Edge TPU
        heats.append(layers.Resizing(grid, grid, interpolation="nearest", name=f"repeat{f}")(heat) if repeat > 1 else heat)
        pools += [layers.GlobalAveragePooling2D(name=f"avg{f}")(cells), layers.GlobalMaxPooling2D(name=f"max{f}")(cells)]
        focus_pools += [*pools[-2:], _focused_layers(cells, around, w, b, heads.focus, f)] if heads.focus else pools[-2:]
    heat = layers.Average(name="heat")(heats) if len(heats) > 1 else heats[0]
    heatmap = layers.Reshape((grid, grid), name="heatmap")(heat)
    hottest = layers.GlobalMaxPooling2D(name="abnormal")(heat)
    pool = layers.Concatenate(name="pooled")(pools)
    focus_pool = layers.Concatenate(name="focus_pooled")(focus_pools) if heads.focus else pool
    classes_layer = layers.Dense(len(LABELS), activation="softmax", name="classes")
    malignant_layer = layers.Dense(1, activation="sigmoid", name="malignant")
    classes, malignant = classes_layer(pool), malignant_layer(focus_pool)
    # the focused block is pooled as a mean over the grid, not a sum: its weights take the grid's cell count
    rows = np.ones(len(heads.malignant_w), np.float32)
    if heads.focus:
        for k, f in enumerate(factors):
            rows[(3 * k + 2) * trunk.CHANNELS : (3 * k + 3) * trunk.CHANNELS] = (size // trunk.STRIDE // f) ** 2
    classes_layer.set_weights([heads.classes_w.astype(np.float32), heads.classes_b.astype(np.float32)])
    malignant_layer.set_weights([(heads.malignant_w * rows).reshape(-1, 1).astype(np.float32), np.array([heads.malignant_b], np.float32)])
    return keras.Model(inputs, [classes, hottest, malignant, heatmap], name="mias_edge_reader")


def split_model(model, size: int, factors: tuple[int, ...]):
    """(network, Heads) of a `build_model` network: its trunks as `build_network`, its heads as
    `edge.inference.heads.Heads`, what ships (heads inside the int8 graph round their large, cancelling
    weights to int8; beside it they run in float, `edge.inference.heads`)."""
    names = {layer.name for layer in model.layers}
    if any(name.startswith("focused") for name in names):
        raise ValueError("a network with a focused block cannot be split: its sharpness is folded into its weights")
    cell_w, cell_b = [], []
    for f in factors:
        if f"cell_head{f}_own" in names:
            own, bias = model.get_layer(f"cell_head{f}_own").get_weights()
            around = model.get_layer(f"cell_head{f}_around").get_weights()[0]
            cell_w.append(np.concatenate([own.reshape(-1), around.reshape(-1)]).astype(np.float64))
        else:
            kernel, bias = model.get_layer(f"cell_head{f}").get_weights()
            cell_w.append(kernel.reshape(-1).astype(np.float64))
        cell_b.append(float(bias[0]))
    context = model.get_layer(f"around{factors[0]}").pool_size[0] if f"around{factors[0]}" in names else 0
    classes_w, classes_b = model.get_layer("classes").get_weights()
    malignant_w, malignant_b = model.get_layer("malignant").get_weights()
    heads = Heads(tuple(cell_w), tuple(cell_b), classes_w.astype(np.float64), classes_b.astype(np.float64),
                  malignant_w[:, 0].astype(np.float64), float(malignant_b[0]), 0.0, context)
    network = build_network(size, factors)
    for f in factors:
        network.get_layer(f"trunk{f}").set_weights(model.get_layer(f"trunk{f}").get_weights())
    return network, heads


def _cell_logit(cells, around, w: np.ndarray, b: float, name: str):
    """w . cells + b as a 1x1 convolution; with their neighbourhood mean `around`, w . [cells, around] + b
    as two 1x1 convolutions added. Not a Concatenate: it would give the cells and their mean one
    int8 scale, and the converter then left the Dense heads reading the global max in float
    (DEQUANTIZE, float FULLY_CONNECTED: not Edge TPU ready)."""
    from keras import layers

    if around is None:
        conv = layers.Conv2D(1, 1, name=name)
        z = conv(cells)
        conv.set_weights([w.reshape(1, 1, -1, 1).astype(np.float32), np.array([b], np.float32)])
        return z
    channels = cells.shape[-1]
    own, near = layers.Conv2D(1, 1, name=f"{name}_own"), layers.Conv2D(1, 1, use_bias=False, name=f"{name}_around")
    z = layers.Add(name=name)([own(cells), near(around)])
    own.set_weights([w[:channels].reshape(1, 1, -1, 1).astype(np.float32), np.array([b], np.float32)])
    near.set_weights([w[channels:].reshape(1, 1, -1, 1).astype(np.float32)])
    return z


def _focused_layers(cells, around, w: np.ndarray, b: float, focus: float, f: int):
    """`focused` as layers: a sharpened copy of the cell head (`_cell_logit`), a softmax over the
    grid, the cells' features weighted by it, averaged (the sum divided by the cell count)."""
    from keras import layers

    grid = cells.shape[1]
    z = _cell_logit(cells, around, w * focus, b * focus, f"focus_logit{f}")
    weights = layers.Softmax(name=f"focus_weights{f}")(layers.Reshape((grid * grid,), name=f"focus_flat{f}")(z))
    weights = layers.Reshape((grid, grid, 1), name=f"focus_grid{f}")(weights)
    return layers.GlobalAveragePooling2D(name=f"focused{f}")(layers.Multiply(name=f"focus{f}")([cells, weights]))


def scale_images(images: np.ndarray, factor: int) -> np.ndarray:
    """Prepared images average-pooled factor x factor, as the network's pool layer does (float32)."""
    if factor == 1:
        return images.astype(np.float32)
    n, size = images.shape[0], images.shape[1]
    return images.reshape(n, size // factor, factor, size // factor, factor).astype(np.float32).mean((2, 4))
