"""Project settings.

Deliberately minimal: Kedro's defaults apply (OmegaConfigLoader, ``conf/`` as the
configuration source, ``base`` + ``local`` environments, DataCatalog, no project
hooks), so the project behaves like a freshly generated Kedro 1.x project.
See https://docs.kedro.org/en/stable/configure/configuration_basics/
"""

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
