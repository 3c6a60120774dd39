"""The checker measured: which errors it can see (``resolve``), how often it flags a correct
derivation (``soak``, on Dask) and how fast it runs (``bench``)."""
