"""Integrations with training frameworks, one module each, each importing its framework only when used.

- ``hpctrack.integrations.lightning.HpctrackLogger`` (``pip install 'hpctrack[lightning]'``)
- ``hpctrack.integrations.transformers.HpctrackCallback`` (``pip install 'hpctrack[transformers]'``)
"""

__all__: list = []
