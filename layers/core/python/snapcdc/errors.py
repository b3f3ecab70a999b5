"""One error policy for the whole package.

Every error snapcdc raises on purpose derives from :class:`SnapcdcError`. Those that a retry of the
same event cannot fix (bad configuration, a refused input, wrong credentials, an archive that breaks
a safety limit, a disk too small for the data) also derive from :class:`PermanentError`: the
handlers catch that marker, report the failure and do not ask Lambda to retry. Anything else is
transient as far as a handler knows (an outage, throttling, a deadline): it is raised, and Lambda
retries the event.

The concrete errors live beside the code that raises them (the engine's in
:mod:`snapcdc.engine.spec`, the configuration's in :mod:`snapcdc.config`, ...); this module holds
only the bases and the errors shared by several modules.
"""

from __future__ import annotations


class SnapcdcError(Exception):
    """Base of every error snapcdc raises on purpose; the message names what was wrong and where."""


class PermanentError(SnapcdcError):
    """A retry cannot help: the same input, configuration or resources give the same failure."""


class OutOfDiskSpaceError(PermanentError, RuntimeError):
    """The work dir's file system cannot hold what the extract must write there.

    Permanent: a retry gets the same ephemeral storage. The message names the folder and sizes.
    """


class ControlSignal(SnapcdcError):
    """Not a failure: raised to change the flow (a snapshot handed to the Spark job, a fast path that
    falls back to a slower one). Caught by the code that expects it; one that escapes is a bug."""
