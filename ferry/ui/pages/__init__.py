"""The dashboard's pages, one module per family; each exposes `routes(context)`.

    models    `/` every model; `/ui/models/NAME` its versions, aliases and their history (an
              alias moved from the page, through the gate); `/ui/models/NAME/VERSION` a version
    traffic   `/ui/traffic` live numbers per model and version, from the server's own metrics
              and the monitoring store's history
    drift     `/ui/drift` and `/ui/drift/NAME` per column verdicts over time, distributions,
              staleness and live performance
    batch     `/ui/batch` batch runs
"""

from types import ModuleType

from ferry.ui.pages import batch, drift, models, traffic

PAGE_MODULES: list[ModuleType] = [models, traffic, drift, batch]
"""The page modules, in the order their routes are tried (registered explicitly here)."""
