"""gunicorn's access log without the secrets some URLs carry (an invitation's token, a verification or
password-reset link's): ``gunicorn --logger-class core.gunicorn_logging.RedactingLogger``, as ``manage.py up``,
the image and the chart run it. Pure: gunicorn and core.logfilters only (the master imports it before Django)."""

from __future__ import annotations

from gunicorn.glogging import Logger

from core.logfilters import secrets_redact

# The atoms of an access-log line that hold the request's URL or one it came from: the request line, the path,
# the query string and the Referer (a page opened from an invitation link names it).
_URL_ATOMS = ("r", "U", "q", "f")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in _URL_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = secrets_redact(atoms[key])
        # Header atoms ("{referer}i") are keyed by lower-cased name in braces.
        for key, value in list(atoms.items()):
            if key.startswith("{") and isinstance(value, str):
                atoms[key] = secrets_redact(value)
        return atoms
