"""
The operator's side of a running server: the admin endpoint with its status
page, Prometheus metrics and JSON API.
"""
