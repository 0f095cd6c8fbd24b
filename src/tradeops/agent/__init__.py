"""The kill-switch agent: the trading state, its control protocol, breakers, enforcement."""
