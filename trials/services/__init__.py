"""Writes of the trials app, by sub-domain (HackSoft style: services write, selectors read)."""
