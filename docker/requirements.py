"""Print the pip requirements of trigger_kd from pyproject.toml (build backend, dependencies, extras).

Usage: python docker/requirements.py pyproject.toml [EXTRA,EXTRA]
One source for the image build (docker/Dockerfile) and its offline wheelhouse
(docker/build-image.sh), so the image's pins are pyproject.toml's.
"""
import sys
import tomllib

project = tomllib.load(open(sys.argv[1], "rb"))
extras = [e for e in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if e]
optional = project["project"]["optional-dependencies"]
print("\n".join(project["build-system"]["requires"] + project["project"]["dependencies"]
                + [d for e in extras for d in optional[e]]))
