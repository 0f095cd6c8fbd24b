"""The strategy client: the only tradeops code a strategy needs.

A release ships this package next to the strategy (``site/tradeops_client``),
first on the path, so a strategy keeps the client it was built and tested with
across host-library upgrades. What it contains is a contract with the host's
agent, versioned by file format (see ``tradingstate`` and docs/host-contract.md),
never by this package's version: ``CLIENT_VERSION`` only says which build it is.

- ``tradingstate``: read the host's trading state before every order, and the
  order checks of ACTIVE, REDUCING and HALTED.
- ``liveness``: whether the kill-switch agent is alive (its heartbeat file), and
  ``effective_state``: HALTED when it is not.
- ``agentbeat``: the strategy's own heartbeat to the agent (its dead man's
  switch), one request of the agent's protocol version 1.

It depends on nothing but the standard library.
"""

CLIENT_VERSION = "0.2.0"
