"""Map the top-level folders to subpackages of `arbor` (servers/ -> arbor.servers, ...)."""

from pathlib import Path

from setuptools import find_packages, setup

FOLDERS = ("servers", "tools", "kb", "host", "tui")
ROOT = Path(__file__).parent

packages: list[str] = []
package_dir: dict[str, str] = {}
for folder in FOLDERS:
    packages.append(f"arbor.{folder}")
    package_dir[f"arbor.{folder}"] = folder
    for sub in find_packages(str(ROOT / folder)):
        packages.append(f"arbor.{folder}.{sub}")
        package_dir[f"arbor.{folder}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
