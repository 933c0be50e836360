# The package list needs the two data packages mapped from top-level folders (see
# pyproject.toml's package-dir); setuptools' finder cannot see them, so they are added here.
from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["wallctl", "wallctl.*", "drivers", "drivers.*"]),
        "wallctl._layouts",
        "wallctl._config",
    ]
)
