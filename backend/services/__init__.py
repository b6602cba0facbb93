"""Plain services: functions and classes that take a connection or plain values.

Nothing here imports ``flask.request`` or ``g``; routes and the middleware call in.
"""
