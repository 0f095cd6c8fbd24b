"""tradeops: domain logic behind the tradeops.algo Ansible collection."""

__version__ = "0.4.0"
