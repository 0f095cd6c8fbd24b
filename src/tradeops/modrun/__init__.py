"""The logic of the collection's modules: validated parameters in, an Ansible result out.

Each ``run(params, check_mode, diff)`` returns the result dict a module
returns (``failed`` and ``msg`` on failure). Two callers share it, so a module
behaves the same whichever way it runs:

* the module files in ``plugins/modules`` (AnsiballZ, the standard path);
* ``python -m tradeops.modrun`` on the host, which the collection's action
  plugins call over the already-open SSH channel when pipelining is on. That
  skips AnsiballZ's start-up (about 0.13 s of CPU per call, measured), which is
  most of a deploy's cost on a fleet; see docs/deploy.md.
"""
