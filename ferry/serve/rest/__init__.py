"""The REST adapter: Starlette routes over the data plane."""
