"""A browser tab for the dashboard tests that lets no request leave the app under test (no
CDN, nothing fetched from elsewhere) and fails the test on a JavaScript error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def guarded_tab(browser: Any, app_url: str, *, width: int, height: int = 900) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": width, "height": height})
    outside: list[str] = []

    def route(request_route: Any) -> None:
        if request_route.request.url.startswith(app_url):
            request_route.continue_()
        else:  # nothing may come from elsewhere (no CDN)
            outside.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert outside == [], f"requests left the app: {outside}"
    assert errors == [], f"JavaScript errors: {errors}"
