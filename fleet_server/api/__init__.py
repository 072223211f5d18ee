"""The HTTP API: typed dependencies and one router module per resource."""
