"""Exchange simulator: a FIX 4.4 venue on loopback for tests, demos and drills.

``tradeops sim run`` runs it (:mod:`tradeops.sim.cli`); in-process it is
:class:`tradeops.sim.server.SimServer`. See docs/simulator.md.
"""
