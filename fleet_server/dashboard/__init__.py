"""The fleet dashboard: server-rendered pages (Jinja and htmx, uPlot charts, all served from here) with live
updates over Server-Sent Events, behind the server's own tokens and roles."""

from __future__ import annotations

from fleet_server.dashboard.routes import install, router

__all__ = ["install", "router"]
