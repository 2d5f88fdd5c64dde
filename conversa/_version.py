from importlib.metadata import PackageNotFoundError, version


def installed_version() -> str:
    """The installed distribution's version ("0.0.0" in a source tree never installed)."""
    try:
        return version("conversa")
    except PackageNotFoundError:
        return "0.0.0"
