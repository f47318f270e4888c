"""Which packages the wheel holds; everything else about the project is in pyproject.toml.

The checkout keeps templates/ and migrations/ at the top, beside app/. The wheel carries them
inside the package, as app/templates and app/migrations, so that an installed Loupe finds its
pages and its migrations wherever it runs (app/settings.py looks in both places). Moving a
folder into a package takes `package_dir`, which pyproject.toml cannot combine with package
discovery, hence this file: listing the packages by hand would miss the next new folder.
"""

from setuptools import find_namespace_packages, setup

CARRIED = {"app.templates": "templates", "app.migrations": "migrations"}
NOT_PACKAGES = ["*__pycache__*"]

packages = find_namespace_packages(
    include=["app", "app.*", "workers", "workers.*"], exclude=NOT_PACKAGES
)
for name, folder in CARRIED.items():
    inner = find_namespace_packages(folder, exclude=NOT_PACKAGES)
    packages += [name, *(f"{name}.{sub}" for sub in inner)]

setup(packages=packages, package_dir=CARRIED)
