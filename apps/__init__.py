"""attnlab apps: LightningModules built on ``core``, all run by ``apps.cli`` (the ``attnlab`` command)."""
