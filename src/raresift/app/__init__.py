"""The local labeling web app over a session: ``raresift serve PROJECT``.

Needs the ``app`` extra (``pip install 'raresift[app]'``: Starlette, uvicorn, Jinja2, Pillow).
The pages are rendered on the server; the one script, ``static/app.js``, is plain JavaScript
with no library, so nothing is ever loaded from another site.
"""

from raresift.app.guard import is_loopback
from raresift.app.server import create_app, serve

__all__ = ["create_app", "is_loopback", "serve"]
