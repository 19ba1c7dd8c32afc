"""LightningDataModules for attnlab apps."""
