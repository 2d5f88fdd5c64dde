"""The operator console: server-rendered HTML pages under ``/conversa/console``.

Layout of the package:

- :mod:`.mount` builds the Starlette ``Mount`` that ``http/app.py`` adds to the application;
- :mod:`.web` is what a page module uses: the ``page`` and ``action`` decorators (sign-in
  and CSRF checks), ``render``, ``service_of``;
- :mod:`.session`, :mod:`.keys`, :mod:`.state`, :mod:`.headers`: the signed session cookie, its
  key, the per-process console state and the security headers;
- :mod:`.pages`: one module per page, each exposing ``ROUTES`` (a list of Starlette routes,
  paths relative to the console's prefix); :data:`.pages.ROUTES` gathers them;
- ``templates/`` (Jinja2, autoescaped; every page extends ``base.html``) and ``static/`` (the
  only place CSS and JavaScript come from: the Content-Security-Policy forbids inline ones).
"""
