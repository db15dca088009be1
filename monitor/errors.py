"""The root of every Slicewatch exception; each subpackage subclasses it in its own ``errors``."""


class SlicewatchError(Exception):
    """Base class. Messages never carry payload content (prompts, outputs, feature values)."""


class ConfigError(SlicewatchError):
    """The configuration is invalid; the message names the key and the reason."""


class StoreError(SlicewatchError):
    """A database operation failed for a reason retrying will not fix (schema, constraint, bug).
    Messages name the operation and the driver error class, never row contents."""


class StoreUnavailable(StoreError):
    """The database could not be reached or dropped the connection; retrying later may succeed."""
