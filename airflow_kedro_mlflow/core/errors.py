"""Errors a user can act on.

Each carries a one-line message that names the file, key, pipeline or node at fault, so the CLI can
print it without a traceback and a task log shows the cause at its last line.
"""


class AirflowKedroError(Exception):
    """Base class for errors of this package that are the user's to fix."""


class ExportError(AirflowKedroError):
    """A Kedro pipeline cannot be exported to an Airflow DAG."""


class PipelineNotStandalone(ExportError):
    """A pipeline reads in-memory data that none of its own nodes produces: it runs only as part
    of a larger pipeline (``--all`` skips it, naming why)."""


class ConfigError(AirflowKedroError):
    """A configuration file or key is missing or malformed."""


class ProjectNotFoundError(AirflowKedroError):
    """The Kedro project an exported DAG refers to cannot be found on this machine."""


class ProjectOpenError(AirflowKedroError):
    """The Kedro project cannot be opened (session, hooks, context, catalog) on this worker."""


class UnsafeRemovalError(AirflowKedroError):
    """A removal was refused: its path is not strictly inside the folder it must stay in."""
