"""The JSON API under /api/v1/: personal bearer tokens, the same selectors, services and forms as
the pages. To add an endpoint: a view in ``views.py`` (declare ``capabilities`` per method), a
route in ``urls.py``, a row in tests/security/test_access_matrix.py's API_MATRIX."""
