"""The one base class of the errors a user can fix.

Every error whose message tells the user what is wrong with their input (a
path, config, checkpoint, data set or option) and what to do derives from
:class:`UserError`; :func:`repvgg_seg.utils.cli.run_cli` prints those as one
``error: ...`` line and exits with :data:`USER_ERROR_EXIT`. The subclasses
keep a builtin base too (``ValueError``, ``FileNotFoundError``...), so code
that catches the builtin keeps working.
"""


class UserError(Exception):
    """Input the user can fix; the message is the whole explanation."""


class InvalidArgument(UserError, ValueError):
    """A value passed to a function or an option that cannot work."""


class PathNotFound(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""

    def __str__(self):  # FileNotFoundError('msg') would print "msg" anyway;
        return self.args[0] if self.args else ''  # keep it for (errno, msg)


class ConfigError(UserError, ValueError):
    """A config file that cannot be read, or options that do not apply."""
