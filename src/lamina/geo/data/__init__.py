"""Everything that turns files into (variable, month, lat, lon) fields.

- :mod:`~lamina.geo.data.grid`: regular lon/lat grids and variable descriptions.
- :mod:`~lamina.geo.data.readers`: windowed readers (arrays, HDF5, NetCDF, GeoTIFF).
- :mod:`~lamina.geo.data.rasters`: :class:`~lamina.geo.data.rasters.RasterStack`, the stack of fields.
- :mod:`~lamina.geo.data.landmask`: the GLOBE land mask and land fractions.
- :mod:`~lamina.geo.data.sampling`: pixel sampling for pretraining, with a spatial hold-out.
- :mod:`~lamina.geo.data.sources`: the real offline sources, one module per family, and their registry.
"""
