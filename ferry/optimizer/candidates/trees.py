"""Tree-ensemble candidates: the original model compiled to C by TL2cgen and built with gcc.

The framework's own model (`context.original`) is imported into Treelite (scikit-learn random
forests, extra trees, gradient boosting and histogram gradient boosting through
`treelite.sklearn.import_model`; XGBoost and LightGBM boosters through `treelite.frontend`),
TL2cgen writes it as C split over several translation units (`parallel_comp`: gcc's time grows
faster than linearly with the size of one file, a 200-tree depth-10 forest in one file takes
more than 9 minutes) and gcc builds them, one job per core, into the shared library that
`ferry.runtime.tl2cgen` loads. Thresholds and leaves keep the model's own precision (float64
for scikit-learn and LightGBM), so probabilities equal the framework's.

Next to TL2cgen's code the library gets ferry's batch entry points (`ENTRY_TEMPLATE`, one for
float32 and one for float64 rows, OpenMP over rows), which the runtime calls through ctypes
instead of TL2cgen's Python predictor (see `ferry.runtime.tl2cgen`); the library needs the
OpenMP runtime (libgomp) where it is loaded.

TL2cgen writes the C code in a child Python process: its bundled Treelite prints a version
notice on the process's stderr, which the child's captured output swallows. gcc runs through
`tl2cgen.create_shared`, whose compiler output is captured too.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from string import Template
from typing import Any

from ferry.errors import UnsupportedModelError, one_line
from ferry.optimizer.candidate import (
    BuiltCandidate,
    Candidate,
    OptimizeContext,
    Precision,
    Threads,
)
from ferry.registry import Runtime
from ferry.runtime.tl2cgen import (
    LIBRARY,
    TL2CGEN_SETTINGS,
    Scores,
    Tl2cgenPredictor,
    Tl2cgenSettings,
    this_platform,
)
from ferry.signature import Layout, Task, TensorSpec

TOOLCHAIN = "gcc"
COMPILER_OPTIONS = ("-O3", "-fopenmp", "-Wl,-Bsymbolic")
"""Added to TL2cgen's own (`-O3 -fPIC -std=c99`): OpenMP for the entry points' threads, and
calls inside the library bound to its own symbols (TL2cgen's `predict` is a common name)."""
NODES_PER_UNIT = 500
"""Tree nodes per translation unit: gcc takes about 1 ms of CPU per node at this size."""
MAX_UNITS = 64
MAX_NODES = 200_000
"""Larger ensembles are refused: about 3 minutes of gcc on one core at this size."""
BUILD_TIMEOUT_S = 900
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm")
SKLEARN_ENSEMBLES = (
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
    "ExtraTreesRegressor", "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
)
"""The scikit-learn ensembles (from `sklearn.ensemble`) that Treelite imports."""
XGBOOST_TREE_BOOSTERS = ("gbtree", "dart")
NUMERIC_KINDS = "fiu"
"""numpy dtype kinds an input may have (integers are read as float32, as the frameworks do)."""

_GENERATE_SCRIPT = """
import sys
import tl2cgen, treelite
model, sources, units = sys.argv[1:]
tl2cgen.generate_c_code(treelite.Model.deserialize(model), sources,
                        {"parallel_comp": int(units)})
"""
"""Run as `python -c`: write the C code of a serialized Treelite model (see the module notes)."""

ENTRY_ROW_TYPES = {"ferry_predict_f32": "float", "ferry_predict_f64": "double"}
"""ferry's entry points (`ferry.runtime.tl2cgen.ENTRY_POINTS`) and the C type of their rows."""
ENTRY_SOURCE = "ferry_predict"
"""The translation unit holding ferry's batch entry points (`ferry.runtime.tl2cgen`)."""
ENTRY_TEMPLATE = Template("""
int $name(const $row* rows, size_t n_rows, size_t n_cols, int threads, $leaf* out) {
  const size_t width = (size_t)N_TARGET * MAX_N_CLASS;
  int failed = 0;
  #pragma omp parallel num_threads(threads) if(threads > 1 && n_rows > 1) reduction(|:failed)
  {
    union Entry* entry = (union Entry*)malloc((n_cols ? n_cols : 1) * sizeof(union Entry));
    if (entry == NULL) {
      failed = 1;
    } else {
      #pragma omp for schedule(static)
      for (long r = 0; r < (long)n_rows; ++r) {
        const $row* row = rows + (size_t)r * n_cols;
        $leaf* result = out + (size_t)r * width;
        for (size_t c = 0; c < n_cols; ++c) {
          if (isnan(row[c])) {
            entry[c].missing = -1;
          } else {
            entry[c].fvalue = row[c];
          }
        }
        for (size_t k = 0; k < width; ++k) {
          result[k] = 0;
        }
        predict(entry, 0, result);
      }
      free(entry);
    }
  }
  return failed;
}
""")
"""One batch entry point: `$name` reads rows of `$row`, writes `$leaf` scores."""
PREDICT_PROTOTYPE = re.compile(
    r"void\s+predict\s*\(\s*union\s+Entry\s*\*\s*\w+\s*,\s*int\s+\w+\s*,"
    r"\s*(float|double)\s*\*")
"""TL2cgen's per-row `predict` in `header.h`; the group is the leaf output's C type."""


class Tl2cgenCandidate(Candidate):
    name = "tl2cgen"
    precision = Precision.EXACT
    description = "the tree ensemble compiled to C by TL2cgen and built with gcc"

    def unavailable(self, context: OptimizeContext) -> str | None:
        return _model_family(context) or _environment() or _original_kind(context)

    def build(self, context: OptimizeContext, threads: Threads) -> BuiltCandidate:
        started = time.perf_counter()
        model = treelite_model(context.version.framework, context.original)
        nodes = node_count(model)
        if nodes > MAX_NODES:
            raise UnsupportedModelError(
                f"the ensemble has {nodes:,} nodes, over the {MAX_NODES:,} TL2cgen compiles"
                f" (about 1 ms of gcc per node): serve it on ONNX Runtime")
        scores = scores_kind(model, context)
        units = translation_units(model.num_tree, nodes)
        library = compile_library(model, context.workdir, units)
        notes = (f"{model.num_tree} trees, {nodes:,} nodes in {units} units, built in"
                 f" {time.perf_counter() - started:.1f} s")
        return built_library(context, {LIBRARY: library}, scores, threads, notes)


def built_library(context: OptimizeContext, artifacts: dict[str, bytes], scores: str,
                  threads: Threads, notes: str) -> BuiltCandidate:
    """The candidate that runs the compiled library with `threads`."""
    import tl2cgen

    if threads.parallel:
        raise UnsupportedModelError("TL2cgen has no parallel executor: use intra-op threads")
    version = context.version
    settings = Tl2cgenSettings(threads=threads.intra_op, scores=scores,
                               platform=this_platform(),
                               tl2cgen_version=str(tl2cgen.__version__))
    predictor = Tl2cgenPredictor(artifacts[LIBRARY], version.signature, version.task,
                                 settings=settings, model=version.name,
                                 version=version.version).load()
    return BuiltCandidate(
        predictor=predictor, runtime=Runtime.TL2CGEN,
        settings={TL2CGEN_SETTINGS: settings.to_dict()}, artifacts=artifacts, notes=notes,
        rethread=lambda other: built_library(context, artifacts, scores, other, notes))


# --- availability -----------------------------------------------------------------------------

def _model_family(context: OptimizeContext) -> str | None:
    """Why the version is not a tree model TL2cgen can serve, from its record alone."""
    version = context.version
    if version.framework not in FRAMEWORKS:
        return (f"TL2cgen compiles scikit-learn, XGBoost and LightGBM tree ensembles,"
                f" not {version.framework} models")
    if version.task not in (Task.CLASSIFICATION, Task.REGRESSION):
        return f"TL2cgen serves classifiers and regressors here, not {version.task} models"
    signature = version.signature
    if (signature.layout != Layout.TENSOR or len(signature.inputs) != 1
            or not _numeric(signature.inputs[0])):
        return "the model has non-numeric or several inputs: TL2cgen takes one numeric matrix"
    return None


def _numeric(spec: TensorSpec) -> bool:
    try:
        return spec.numpy_dtype().kind in NUMERIC_KINDS
    except TypeError:  # a dtype numpy does not know
        return False


def _environment() -> str | None:
    """Why TL2cgen cannot build here."""
    missing = [name for name in ("tl2cgen", "treelite") if find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'ferry-ml[optimize]')"
    if shutil.which(TOOLCHAIN) is None:
        return f"no C compiler: {TOOLCHAIN} is not on PATH"
    return None


def _original_kind(context: OptimizeContext) -> str | None:
    """Why the original model (loaded here) is not a tree ensemble Treelite imports."""
    if context.load_original is None:
        return "the search has no original model to compile"
    model = context.original
    framework = context.version.framework
    if framework == "sklearn":
        return _sklearn_kind(model)
    if framework == "xgboost":
        return _xgboost_kind(model)
    return _lightgbm_kind(model)


def _sklearn_kind(model: object) -> str | None:
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return "not a bare tree ensemble: the model is a pipeline"
    if _sklearn_ensemble(model):
        return None
    return (f"not a tree ensemble Treelite imports ({type(model).__name__}); it takes"
            f" {', '.join(SKLEARN_ENSEMBLES)}")


def _sklearn_ensemble(model: object) -> bool:
    import sklearn.ensemble

    classes = tuple(getattr(sklearn.ensemble, name) for name in SKLEARN_ENSEMBLES)
    return isinstance(model, classes)


def _xgboost_kind(model: object) -> str | None:
    booster = _xgboost_booster(model)
    if booster is None:
        return f"not an XGBoost model ({type(model).__name__})"
    kind = json.loads(booster.save_config())["learner"]["gradient_booster"]["name"]
    if kind not in XGBOOST_TREE_BOOSTERS:
        return f"not a tree ensemble: the XGBoost booster is {kind}"
    return None


def _lightgbm_kind(model: object) -> str | None:
    if _lightgbm_booster(model) is None:
        return f"not a LightGBM model ({type(model).__name__})"
    return None


def _xgboost_booster(model: object) -> Any:
    import xgboost

    if isinstance(model, xgboost.XGBModel):
        return model.get_booster()
    return model if isinstance(model, xgboost.Booster) else None


def _lightgbm_booster(model: object) -> Any:
    """The booster of a LightGBM wrapper, of ferry's `LightGBMModel`, or a raw Booster."""
    import lightgbm

    booster = getattr(model, "booster_", model)
    return booster if isinstance(booster, lightgbm.Booster) else None


# --- building ---------------------------------------------------------------------------------

def treelite_model(framework: str, model: object) -> Any:
    """The original model in Treelite's form."""
    import treelite
    import treelite.sklearn

    try:
        if framework == "xgboost":
            return treelite.frontend.from_xgboost(_xgboost_booster(model))
        if framework == "lightgbm":
            return treelite.frontend.from_lightgbm(_lightgbm_booster(model))
        return treelite.sklearn.import_model(model)
    except (treelite.TreeliteError, ValueError, TypeError) as exc:
        raise UnsupportedModelError(
            f"Treelite cannot import this {type(model).__name__} ({one_line(exc)}):"
            " serve it on ONNX Runtime") from exc


def node_count(model: Any) -> int:
    return sum(int(model.get_tree_accessor(i).get_field("num_nodes")[0])
               for i in range(model.num_tree))


def scores_kind(model: Any, context: OptimizeContext) -> str:
    """How the library's output maps to the signature's outputs (`ferry.runtime.tl2cgen`)."""
    header = model.get_header_accessor()
    targets = int(header.get_field("num_target")[0])
    if targets != 1:
        raise UnsupportedModelError(
            f"the ensemble has {targets} targets; ferry serves single-target models only")
    if context.version.task == Task.REGRESSION:
        return Scores.VALUES
    classes = int(header.get_field("num_class")[0])
    labels = context.version.signature.class_labels
    expected = len(labels) if labels is not None else max(classes, 2)
    if classes == expected:
        return Scores.PROBABILITIES
    if classes == 1 and expected == 2:
        return Scores.POSITIVE
    raise UnsupportedModelError(
        f"the ensemble scores {classes} classes, the signature names {expected}:"
        " serve it on ONNX Runtime")


def translation_units(trees: int, nodes: int) -> int:
    """`parallel_comp`: enough files to keep each small and every core busy, one tree at
    least per file."""
    wanted = max(math.ceil(nodes / NODES_PER_UNIT), _cores())
    return max(1, min(wanted, MAX_UNITS, trees))


def compile_library(model: Any, workdir: Path, units: int) -> bytes:
    """The shared library for `model`, built under `workdir` and read back."""
    folder = Path(tempfile.mkdtemp(prefix="tl2cgen-", dir=workdir))
    try:
        sources = generate_sources(model, folder, units)
        add_entry_points(sources)
        return build_library(sources)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def generate_sources(model: Any, folder: Path, units: int) -> Path:
    """TL2cgen's C code for `model` in `folder / "src"`, written by a child process."""
    serialized, sources = folder / "model.treelite", folder / "src"
    model.serialize(serialized)
    command = [sys.executable, "-c", _GENERATE_SCRIPT, str(serialized), str(sources), str(units)]
    try:
        subprocess.run(command, capture_output=True, text=True, check=True,
                       timeout=BUILD_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        raise UnsupportedModelError(
            f"TL2cgen could not write the C code: {_failure(exc.stderr)}") from exc
    except subprocess.TimeoutExpired as exc:
        raise UnsupportedModelError(
            f"TL2cgen took over {BUILD_TIMEOUT_S} s to write the C code: serve the model on"
            " ONNX Runtime") from exc
    return sources


def add_entry_points(sources: Path) -> None:
    """Write ferry's batch entry points next to TL2cgen's code and add them to its recipe."""
    header = (sources / "header.h").read_text()
    found = PREDICT_PROTOTYPE.search(header)
    if found is None:
        raise UnsupportedModelError(
            "TL2cgen wrote a predict() that ferry does not know: install tl2cgen 1.x")
    leaf = found.group(1)
    entries = [ENTRY_TEMPLATE.substitute(name=name, row=row, leaf=leaf)
               for name, row in ENTRY_ROW_TYPES.items()]
    code = "\n".join(["#include <math.h>", "#include <stdlib.h>", '#include "header.h"',
                      *entries])
    (sources / f"{ENTRY_SOURCE}.c").write_text(code)
    recipe_path = sources / "recipe.json"
    recipe = json.loads(recipe_path.read_text())
    recipe["sources"].append({"name": ENTRY_SOURCE, "length": code.count("\n") + 1})
    recipe_path.write_text(json.dumps(recipe))


def build_library(sources: Path) -> bytes:
    """gcc builds the sources into one shared library, one job per core."""
    import tl2cgen

    try:
        built = tl2cgen.create_shared(TOOLCHAIN, sources, nthread=_cores(),
                                      options=list(COMPILER_OPTIONS),
                                      long_build_time_warning=False)
    except (tl2cgen.TL2cgenError, ValueError) as exc:
        raise UnsupportedModelError(f"gcc could not build the library: {_failure(str(exc))}"
                                    ) from exc
    return Path(built).read_bytes()


def _failure(output: str) -> str:
    """The last line of a child's output that names an error (the exception it died of, or
    gcc's complaint), else its last line."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


CANDIDATES: list[Candidate] = [Tl2cgenCandidate()]
