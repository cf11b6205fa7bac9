"""Compatibility name for `services.shared.clock`, the project's one `Clock` protocol and `SystemClock`.

This package used to define its own copy; it now uses the shared one. The names stay importable from here
so existing imports (`from services.shared.kube import clock`) keep working; new code should import
`services.shared.clock`.
"""

from __future__ import annotations

from services.shared.clock import Clock, ManualClock, SystemClock

__all__ = ["Clock", "ManualClock", "SystemClock"]
