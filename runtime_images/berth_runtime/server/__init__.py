"""The model server core: one aiohttp app around an engine wrapper, with health and status."""
