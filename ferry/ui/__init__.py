"""The dashboard: what the registry, the server and the monitoring store know, as web pages.

    context   `UIContext`: the registry, the admin token, the server's live numbers
    render    Jinja2 templates (`templates/`, autoescaped) into pages
    app       every page's routes, and the app `ferry ui` serves
    pages/    one module per page family: models and versions, live traffic, drift, batch runs
    static/   the stylesheet and the script, served from the package (nothing from a CDN)

`ferry serve` mounts the dashboard at `/` beside the inference API; `ferry ui` serves it alone,
for the registry without serving models. Pages read through the public functions the command
line uses (`Registry`, the monitoring store's queries, batch runs); anything that changes
state needs the admin token.
"""
