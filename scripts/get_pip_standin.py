"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py to bootstrap pip into its sanity venvs; this
machine has no internet, only the package index. This stand-in does the same
job with the interpreter's own ``ensurepip`` and then ``pip install`` of the
requested packages (e.g. ``pip==24.2``) from the configured index.
"""

import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
