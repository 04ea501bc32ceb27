"""The scan pipeline: discover inputs, run the analyses (locally or on Dask), decide."""
