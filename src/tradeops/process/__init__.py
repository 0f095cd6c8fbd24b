"""The strategy process on a host: its service manager and the release it runs.

``managers`` drives supervisord (over its XML-RPC socket) or systemd;
``running`` reads the release the running process reports on its status URL;
``service`` is the entry point of the ``strategy`` module.
"""
