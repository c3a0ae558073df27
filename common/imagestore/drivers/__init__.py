"""Image stores that speak to a storage platform's client library (IMAGE_STORES names them)."""
