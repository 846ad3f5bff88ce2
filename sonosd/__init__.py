"""sonosd: a Twisted daemon that bridges Sonos UPnP (GENA) events to its clients."""
