# fnwatch: starts the in-process hook (see fnwatch_hook.py). It must never
# stop the function from starting.
try:
    import fnwatch_hook

    fnwatch_hook.install()
except Exception as e:  # pragma: no cover
    import sys

    print("fnwatch: the Python hook did not start: %r" % (e,), file=sys.stderr)
