"""Broker adapters: one interface, a FIX implementation, and simulator helpers."""
