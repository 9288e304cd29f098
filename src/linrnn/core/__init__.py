"""The bottom layer: errors, validation and the model specification, imported by every other layer.

Nothing here imports :mod:`linrnn.derive`, :mod:`linrnn.verify`, :mod:`linrnn.reports`
or the application modules (:mod:`linrnn.cli`, :mod:`linrnn.suite`).
"""
