"""Response headers more than one route sends."""

# RFC 6749 section 5.1: token responses (and their errors) must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON_MEDIA_TYPE = "application/json"
