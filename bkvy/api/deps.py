"""Reaching the services from a route (STYLE: no globals; services live on app.state)."""

from __future__ import annotations

from fastapi import Request

from bkvy.api.services import Services


def services_of(request: Request) -> Services:
    return request.app.state.services
