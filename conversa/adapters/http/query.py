"""Query parameters of the application endpoints: a name the endpoint does not know is a
mistake (``?stauts=failed`` would otherwise list everything), answered 422 naming it, as an
unknown body field is.

The webhook endpoints do not use this: providers add parameters of their own to the URLs
they call. Health, metrics and the OpenAPI document ignore their query too, so that
monitoring tools may add cache-busting parameters.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from conversa.adapters.http.errors import invalid

#: A longer name is shown cut short in the error.
MAX_SHOWN_NAME = 64


def refuse_unknown_parameters(request: Request, known: Collection[str]) -> None:
    """Raise 422 (field: the first unknown name, sorted) unless every query parameter's
    name is one of ``known``."""
    unknown = sorted(set(request.query_params.keys()) - set(known))
    if not unknown:
        return
    name = unknown[0]
    if len(name) > MAX_SHOWN_NAME:
        name = name[: MAX_SHOWN_NAME - 1] + "…"
    takes = f"known: {', '.join(sorted(known))}" if known else "this endpoint takes none"
    raise invalid(name, f"unknown query parameter {name!r}; {takes}")
