"""Maps the top-level ir/, backends/ and cost_models/ folders to attncc.* subpackages.

The package list is computed (not declared in pyproject.toml) because every
subfolder of a mapped folder needs its own package-dir entry.
"""
from setuptools import find_packages, setup

ROOTS = {"attncc": "attncc", "attncc.ir": "ir", "attncc.backends": "backends", "attncc.cost_models": "cost_models"}

packages, package_dir = [], {}
for pkg, folder in ROOTS.items():
    packages.append(pkg)
    package_dir[pkg] = folder
    for sub in find_packages(folder):
        packages.append(f"{pkg}.{sub}")
        package_dir[f"{pkg}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
