"""The web kernel: what every Labbook app may use, and which imports none of them.

Application errors and their HTTP pages (``errors``, ``http``), the one form
helper of the server-rendered pages (``forms``) and database ids as they come
from URLs and bodies (``ids``). Nothing here knows a model of an app.
"""
