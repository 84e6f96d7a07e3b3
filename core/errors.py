"""What a domain error means to a client, for the errors no built-in exception describes.

A domain error subclasses a built-in (``ValueError``, ``LookupError``…) and, when that built-in's status
(:data:`core.problems.DOMAIN_ERRORS`) is not what a client should see, one of these first; the first of its
bases that the mapping knows gives its status. Routers then just let it propagate.

>>> class JobFinished(Conflict, ValueError): ...
>>> [base.__name__ for base in JobFinished.__mro__[1:3]]
['Conflict', 'ValueError']
"""


class Conflict(Exception):
    """The resource's current state refuses the request (409): a job that already ended, a replay in flight."""


class Unprocessable(Exception):
    """The request is well formed but names nothing to act on (422): an unknown recipe, no input to use."""


class Unavailable(Exception):
    """A service the request needs did not take it (503): the broker refused a message."""


class Misconfigured(Exception):
    """The server's own configuration is broken (500): the log says why, the client only that it is."""
