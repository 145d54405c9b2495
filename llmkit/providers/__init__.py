"""Providers: the registry, the handler base class, how handlers are invoked, and the built-ins."""
